package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/fixture"
	"github.com/infrad/infrad/pkg/site"
)

// nowhere is a log that takes nothing: these tests hand the entries to ApplyLogged
// themselves.
type nowhere struct{}

func (nowhere) Append(context.Context, []byte) error { return errors.New("not in this test") }

func logged(t *testing.T, dir string) *IPAM {
	t.Helper()
	m, err := New(Options{Store: openStore(t, filepath.Join(dir, "infrad.db")), Log: nowhere{}, Origin: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// logOf makes a log of n random commands of the universe, after the base site.
func logOf(t *testing.T, u *universe, n int) []LogEntry {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	cmds := []Command{Reconcile{Stamp: Stamp{At: u.now}, Source: "site.yaml", File: fixture.Site(t)}}
	for i := range n {
		u.now = u.now.Add(time.Duration(i%3) * time.Second) // some share a second: the serial still rises
		cmds = append(cmds, u.command([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}))
	}
	var log []LogEntry
	for i, c := range cmds {
		body, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(entry{Origin: "elsewhere", Seq: uint64(i), envelope: envelope{Type: typeName(c), Command: body}})
		log = append(log, LogEntry{Index: uint64(i + 1), Data: data})
	}
	return log
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
	one := logged(t, t.TempDir())
	for _, e := range log {
		one.ApplyLogged([]LogEntry{e})
		one.Flush() // each entry its own transaction
	}
	many := logged(t, t.TempDir())
	r := rand.New(rand.NewPCG(3, 4))
	for rest := log; len(rest) > 0; {
		n := min(len(rest), 1+r.IntN(300))
		many.ApplyLogged(rest[:n]) // the writer makes its own batches of what comes
		rest = rest[n:]
	}
	many.Flush()
	sameSite(t, "one by one against batches", one, many)
	invariants(t, many.Model(), many.store, u.now)

	// A box restarted half way replays the whole log.
	dir := t.TempDir()
	half := logged(t, dir)
	half.ApplyLogged(log[:len(log)/2])
	half.Close()
	half.store.Close()
	again := logged(t, dir)
	again.ApplyLogged(log)
	again.Flush()
	sameSite(t, "restarted and replayed", one, again)
}

// echo is a log of one box: it hands each entry straight back, in order.
type echo struct {
	m     *IPAM
	mu    sync.Mutex
	index uint64
}

func (e *echo) Append(_ context.Context, data []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.index++
	e.m.ApplyLogged([]LogEntry{{Index: e.index, Data: data}})
	return nil
}

// newLogged is an IPAM whose commands go through a log of its own (echo), with the
// base site applied.
func newLogged(t *testing.T) (*IPAM, *echo) {
	t.Helper()
	log := &echo{}
	m, err := New(Options{Store: openStore(t, filepath.Join(t.TempDir(), "infrad.db")), Log: log, Origin: "box"})
	if err != nil {
		t.Fatal(err)
	}
	log.m = m
	t.Cleanup(m.Close)
	if _, err := m.Reconcile("site.yaml", fixture.Site(t)); err != nil {
		t.Fatal(err)
	}
	return m, log
}

// TestAppliedThroughTheLog: a caller's command goes through the log and the caller
// gets its own result (the address allocated, a refusal), as through the writer.
func TestAppliedThroughTheLog(t *testing.T) {
	m, _ := newLogged(t)
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

// TestUnknownEntryStops: an entry of a command this build does not know (a newer
// build's, in a cluster of two builds) stops the box loudly, its store at the entry
// before, unless the entry says it may be skipped; a skipped one changes nothing, and
// the entries after it apply.
func TestUnknownEntryStops(t *testing.T) {
	m, log := newLogged(t)
	serial, applied := m.Model().Serial(), m.Applied()
	future := `{"origin":"newer","seq":1,%s"type":"RenameZone","command":{"at":"2027-01-01T00:00:00Z"}}`
	log.mu.Lock()
	log.index++
	func() {
		defer func() {
			msg, _ := recover().(string)
			if !strings.Contains(msg, "cannot apply") || !strings.Contains(msg, "upgrade infrad") {
				t.Errorf("an unknown entry: got %q, want the box stopped, saying to upgrade", msg)
			}
		}()
		m.ApplyLogged([]LogEntry{{Index: log.index, Data: fmt.Appendf(nil, future, "")}})
	}()
	if m.Applied() != applied {
		t.Errorf("the store moved to entry %d past an entry it could not apply", m.Applied())
	}
	log.index++
	m.ApplyLogged([]LogEntry{{Index: log.index, Data: fmt.Appendf(nil, future, `"skippable":true,`)}})
	log.mu.Unlock()
	if _, err := m.CreateHost(context.Background(), site.HostSpec{Name: "after", IP: "10.0.40.60"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Model().Host("after"); !ok || m.Model().Serial() == serial {
		t.Errorf("the entries after a skipped one did not apply")
	}
}
