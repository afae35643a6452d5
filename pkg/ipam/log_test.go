package ipam

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// orderedLog is the log of the ipam tests, where pkg/cluster's Raft log (which
// imports this package) cannot be: it gives each command the next index and hands it
// straight to Submit, as a log of one box that has committed it would.
type orderedLog struct {
	m    *IPAM
	mu   sync.Mutex
	last uint64 // the index of the last entry handed to m
}

// submit hands m cmd as the log's next entry.
func (l *orderedLog) submit(cmd Command, done func(result any, err error)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last++
	l.m.Submit(l.last, cmd, done)
}

func (l *orderedLog) Apply(ctx context.Context, cmd Command) (any, error) {
	type reply struct {
		result any
		err    error
	}
	done := make(chan reply, 1)
	l.submit(cmd, func(result any, err error) { done <- reply{result, err} })
	select {
	case r := <-done:
		return r.result, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// entry is one entry of a log: a command at an index.
type entry struct {
	index uint64
	cmd   Command
}

// logOf makes a log of n random commands of the universe, after the base site, each
// written and read back as a log holds it.
func logOf(t *testing.T, u *universe, n int) []entry {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	cmds := []Command{Reconcile{Stamp: Stamp{At: u.now}, Source: "site.yaml", File: universeSite(t)}}
	for i := range n {
		u.now = u.now.Add(time.Duration(i%3) * time.Second) // some share a second: the serial still rises
		cmds = append(cmds, u.command([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}))
	}
	var log []entry
	for i, c := range cmds {
		log = append(log, entry{uint64(i + 1), roundTrip(t, c)})
	}
	return log
}

// applier is an IPAM that only the test's entries reach.
func applier(t *testing.T, dir string) *IPAM {
	t.Helper()
	return newOn(t, openStore(t, filepath.Join(dir, "infrad.db")))
}

func submit(m *IPAM, log []entry) {
	for _, e := range log {
		m.Submit(e.index, e.cmd, nil)
	}
}

func sameSite(t *testing.T, what string, a, b *IPAM) {
	t.Helper()
	ma, mb := a.Model(), b.Model()
	if !sameJSON(ma.Hosts(), mb.Hosts()) || !sameJSON(ma.Records(), mb.Records()) || !sameJSON(ma.Leases(), mb.Leases()) || ma.serial != mb.serial {
		t.Fatalf("%s: the sites differ:\nhosts %v\n  and %v\nrecords %v\n    and %v\nleases %v\n   and %v\nserials %d and %d", what, ma.Hosts(), mb.Hosts(), ma.Records(), mb.Records(), ma.Leases(), mb.Leases(), ma.serial, mb.serial)
	}
	if a.Applied() != b.Applied() {
		t.Fatalf("%s: applied %d and %d", what, a.Applied(), b.Applied())
	}
}

// TestLogAppliedAlikeHoweverBatched: the boxes of a cluster apply one log in batches
// of their own sizes (Raft hands each what it has committed), and a restarted box
// replays the log from before what its store holds. Each ends with the same site:
// a command's outcome depends on the commands before it, never on its batch, and an
// entry the store holds is not applied twice.
func TestLogAppliedAlikeHoweverBatched(t *testing.T) {
	u := universe{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	log := logOf(t, &u, 600)
	one := applier(t, t.TempDir())
	for _, e := range log {
		submit(one, []entry{e})
		one.Flush() // each entry its own transaction
	}
	many := applier(t, t.TempDir())
	r := rand.New(rand.NewPCG(3, 4))
	for rest := log; len(rest) > 0; {
		n := min(len(rest), 1+r.IntN(300))
		submit(many, rest[:n]) // the writer makes its own batches of what comes
		rest = rest[n:]
	}
	many.Flush()
	sameSite(t, "one by one against batches", one, many)
	invariants(t, many.Model(), many.store, u.now)

	// A box restarted half way replays the whole log.
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "infrad.db"))
	half := newOn(t, st)
	submit(half, log[:len(log)/2])
	half.Close()
	st.Close()
	again := applier(t, dir)
	submit(again, log)
	again.Flush()
	sameSite(t, "restarted and replayed", one, again)
}

// TestAppliedThroughTheLog: a caller's command goes through the log and the caller
// gets its own result (the address allocated, a refusal), however many call at once.
func TestAppliedThroughTheLog(t *testing.T) {
	m, _ := newIPAM(t)
	var wg sync.WaitGroup
	got := make([]site.Host, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := m.Apply(context.Background(), AllocateHost{Stamp: m.stampFor(context.Background()), Subnet: "vm", Host: site.Host{Name: fmt.Sprintf("n%d", i)}})
			if err != nil {
				t.Error(err)
			}
			got[i], _ = res.(site.Host)
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for i, h := range got {
		if h.Name != fmt.Sprintf("n%d", i) || !h.IP.IsValid() || seen[h.IP] {
			t.Errorf("caller %d got %+v", i, h)
		}
		seen[h.IP] = true
		if stored, ok := m.Model().Host(h.Name); !ok || stored.IP != h.IP {
			t.Errorf("caller %d's host is not in the model: %+v", i, stored)
		}
	}
	if _, err := m.Apply(context.Background(), AllocateHost{Stamp: m.stampFor(context.Background()), Subnet: "vm", Host: site.Host{Name: "n0"}}); !errors.Is(err, ErrConflict) {
		t.Errorf("a second n0: %v, want a conflict", err)
	}
}

// TestPassedOverChangesNothing: an entry the log's applier passes over (a skippable
// entry of a newer build) changes nothing, and the entries after it apply.
func TestPassedOverChangesNothing(t *testing.T) {
	m, _ := newIPAM(t)
	serial := m.Model().Serial()
	var got error
	m.log.(*orderedLog).submit(nil, func(_ any, err error) { got = err })
	m.Flush()
	if got == nil || m.Model().Serial() != serial {
		t.Errorf("a passed-over entry: got %v at serial %d (was %d), want a refusal that changes nothing", got, m.Model().Serial(), serial)
	}
	if _, err := m.CreateHost(context.Background(), site.HostSpec{Name: "after", IP: "10.0.40.60"}); err != nil {
		t.Fatal(err)
	}
}
