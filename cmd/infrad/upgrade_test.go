package main

// A rolling upgrade across two builds: three nodes of the build before this one's
// changes to the log are upgraded, one at a time, under load.

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/testenv"
)

// previousBuild is the commit of the build before this one's new log entries
// (SetDHCPServers, SettleEnds) and the state the nodes announce to each other.
const previousBuild = "903d553"

// buildPrevious builds previousBuild's infrad from the repository's history, or skips
// saying why it cannot (a clone without that commit).
func buildPrevious(t *testing.T) string {
	t.Helper()
	testenv.Need(t, "git", "tar")
	if err := exec.Command("git", "-C", "../..", "cat-file", "-e", previousBuild+"^{commit}").Run(); err != nil {
		t.Skipf("the clone does not hold commit %s (a shallow clone?): there is no previous build to upgrade from", previousBuild)
	}
	src := t.TempDir()
	archive := exec.Command("git", "-C", "../..", "archive", previousBuild)
	extract := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	extract.Stdin = pipe
	if err := extract.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v", previousBuild, err)
	}
	if err := extract.Wait(); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "infrad-"+previousBuild)
	build := exec.Command("go", "build", "-o", bin, "./cmd/infrad")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", previousBuild, err, out)
	}
	return bin
}

// TestClusterUpgradeAcrossBuilds: a cluster of the previous build is upgraded node by
// node (SIGTERM, start the new build on the same data) while perfdhcp, a resolver and
// a writer run. No write fails for good, no ACKed lease is lost, no name goes
// unanswered by every node; the new build's failover commands wait until every node
// runs it, and are used once they do.
func TestClusterUpgradeAcrossBuilds(t *testing.T) {
	previous := buildPrevious(t)
	l := newClusterLab(t, 3, false)
	for _, n := range l.nodes {
		n.bin = previous
	}
	l.form(t)

	stop := make(chan struct{})
	var asked, unanswered, written, failed atomic.Int64
	var load sync.WaitGroup
	load.Go(func() { l.resolve(stop, &asked, &unanswered) })
	var hosts []string
	load.Go(func() { // a writer that retries a refused write on each node for 10 s
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			name, ip := fmt.Sprintf("up%d", i), fmt.Sprintf("10.78.2%02d.%d", i/250, 1+i%250)
			ok := false
			for deadline := time.Now().Add(10 * time.Second); !ok && time.Now().Before(deadline); {
				for _, n := range l.nodes {
					if ok, _ = l.putHost(n, name, ip); ok {
						break
					}
				}
			}
			if ok {
				written.Add(1)
				hosts = append(hosts, name)
			} else {
				failed.Add(1)
			}
		}
	})
	perf := l.perfdhcp(t, 50, 30)
	for i, n := range l.nodes {
		n.p.cmd.Process.Signal(syscall.SIGTERM)
		if code := n.p.wait(t, 15*time.Second); code != 0 {
			t.Errorf("%s (%s) stopped with %d", n.name, previousBuild, code)
		}
		n.bin = ""
		l.start(t, n, "")
		testenv.WaitFor(t, n.name+" back among the voters", func() bool {
			st, ok := l.status(t, n)
			return ok && st.Quorum
		})
		if i < len(l.nodes)-1 {
			if st, ok := l.status(t, n); ok && (st.DHCPServers != 0 || st.LeaseGrants) {
				t.Errorf("with %d of 3 nodes upgraded, the new build's hold on ended leases or its lease grants are on (dhcp_servers %d, lease_grants %v)", i+1, st.DHCPServers, st.LeaseGrants)
			}
		}
	}
	acked := perfACKs(t, perf)
	close(stop)
	load.Wait()
	if unanswered.Load() > 0 {
		t.Errorf("%d of %d names went unanswered by every node", unanswered.Load(), asked.Load())
	}
	if failed.Load() > 0 {
		t.Errorf("%d of %d writes failed for 10 s on every node", failed.Load(), written.Load()+failed.Load())
	}
	l.checkLeases(t, l.nodes, acked)
	for _, n := range l.nodes {
		testenv.WaitFor(t, n.name+" to hold every write", func() bool {
			out, err := l.curl(n, "-f", "http://127.0.0.1:8080/api/v1/hosts")
			var have []struct{ Name string }
			if err != nil || json.Unmarshal([]byte(out), &have) != nil {
				return false
			}
			return !slices.ContainsFunc(hosts, func(h string) bool {
				return !slices.ContainsFunc(have, func(x struct{ Name string }) bool { return x.Name == h })
			})
		})
		testenv.WaitFor(t, n.name+" to count three DHCP servers and keep lease grants, every node running the new build", func() bool {
			st, ok := l.status(t, n)
			return ok && st.DHCPServers == 3 && st.LeaseGrants
		})
	}
	t.Logf("%d names asked, %d writes, %d ACKs across the upgrade", asked.Load(), written.Load(), acked)
}
