package main

// Crash safety: infrad killed with SIGKILL in the middle of writes, then started again.
// What it confirmed (a 201, an ACK) must be there; nothing may be half-written; no
// address may be held twice.

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/client"
)

func TestKillDuringAPIWrites(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	site := siteFile(t, dir, "k8s.example.com", port)
	p := start(t, dir, "serve", "-c", site)
	waitReady(t, base)
	token := readToken(t, filepath.Join(dir, "data"))

	var mu sync.Mutex
	confirmed := map[string]string{} // host → address, for every 201
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("w%d-%d", w, i)
				req, _ := http.NewRequest("POST", base+"/api/v1/subnets/vm/allocate", strings.NewReader(`{"name": "`+name+`"}`))
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the server is gone
				}
				var h struct{ IP string }
				decodeJSON(resp, &h)
				if resp.StatusCode == http.StatusCreated {
					mu.Lock()
					confirmed[name] = h.IP
					mu.Unlock()
					n.Add(1)
				}
			}
		})
	}
	testenv.WaitFor(t, "writes under way", func() bool { return n.Load() >= 30 })
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	close(stop)
	wg.Wait()

	start(t, dir, "serve", "-c", site)
	waitReady(t, base)
	var hosts []struct{ Name, IP string }
	getJSON(t, base+"/api/v1/hosts", token, &hosts)
	byIP := map[string]string{}
	stored := map[string]string{}
	for _, h := range hosts {
		if h.IP == "" || h.Name == "" {
			t.Errorf("a half-written host: %+v", h)
		}
		if other, dup := byIP[h.IP]; dup {
			t.Errorf("%s is held by %s and %s", h.IP, other, h.Name)
		}
		byIP[h.IP], stored[h.Name] = h.Name, h.IP
	}
	for name, ip := range confirmed {
		if stored[name] != ip {
			t.Errorf("%s was created (201, %s) before the kill, and is %q after it", name, ip, stored[name])
		}
	}
	t.Logf("%d hosts confirmed before the kill, %d stored after", len(confirmed), len(hosts))
}

func decodeJSON(resp *http.Response, v any) {
	defer resp.Body.Close()
	client.DecodeJSON(resp, v)
}

func TestKillDuringDHCPBurst(t *testing.T) {
	testenv.NeedRoot(t, "ip", "perfdhcp", "curl")
	l := newLab(t)
	dir := t.TempDir()
	site := strings.Replace(labSiteFor(filepath.Join(dir, "data")), "end: 10.77.0.103}", "end: 10.77.0.250}", 1)
	writeFile(t, filepath.Join(dir, "site.yaml"), site)
	server := l.serveIn(t, dir)

	// perfdhcp (a relay at 10.77.0.50) for 4 s; the server dies after about 2.
	l.setMAC(t, "52:54:00:77:00:50")
	sh(t, "ip", "-n", l.cli, "addr", "add", "10.77.0.50/24", "dev", clientIf)
	perf := exec.Command("ip", "netns", "exec", l.cli, "perfdhcp", "-4", "-l", clientIf, "-r", "200", "-R", "100000", "-p", "4", "10.77.0.1")
	var out strings.Builder
	perf.Stdout, perf.Stderr = &out, &out
	if err := perf.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // a point in the burst, not a bound on anything
	server.cmd.Process.Signal(syscall.SIGKILL)
	<-server.done
	perf.Wait()
	acked := perfCount(out.String(), "REQUEST-ACK", "received")
	if acked <= 0 {
		t.Fatalf("perfdhcp got no ACK before the kill:\n%s", out.String())
	}

	l.serveIn(t, dir)
	leases := l.leases(t, dir)
	seen := map[string]bool{}
	pool := 0
	for _, le := range leases {
		if seen[le.IP] {
			t.Errorf("%s is leased twice", le.IP)
		}
		seen[le.IP] = true
		if le.MAC == "" || le.IP == "" {
			t.Errorf("a half-written lease: %+v", le)
		}
		if le.MAC != "52:54:00:77:00:10" {
			pool++
		}
	}
	// Every ACK perfdhcp received was for a lease on disk; a lease whose ACK was lost
	// on the way may be there too.
	if pool < acked {
		t.Errorf("perfdhcp received %d ACKs before the kill, and %d leases are stored after it", acked, pool)
	}
	t.Logf("%d ACKs before the kill, %d leases after", acked, pool)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
