package cluster

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/fixture"
	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

// TestEntryIsWhatEarlierBuildsWrote: an entry's data is the JSON earlier builds wrote
// and read with encoding/json, and its binary header reads back as written.
func TestEntryIsWhatEarlierBuildsWrote(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, cmd := range []ipam.Command{
		ipam.CommitLease{Stamp: ipam.Stamp{At: at}, Subnet: "vm", MAC: fixture.MAC(t, "52:54:00:00:40:99"), IP: netip.MustParseAddr("10.0.40.160"), Hostname: "pxe", Expires: at.Add(time.Hour)},
		ipam.PutHost{Stamp: ipam.Stamp{At: at, By: "token ci"}, Host: site.Host{Name: "nas", IP: netip.MustParseAddr("10.0.40.30")}, Create: true},
	} {
		got, err := appendEntry(nil, "infra1/9f3a", 42, cmd)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(cmd)
		want, _ := json.Marshal(jsonEntry{Origin: "infra1/9f3a", Seq: 42, Type: ipam.CommandType(cmd), Command: body})
		if string(got) != string(want) {
			t.Errorf("%T:\n got %s\nwant %s", cmd, got, want)
		}
	}
	for _, h := range []header{{Origin: "infra1/9f3a", Seq: 42, Type: "CommitLease"}, {Origin: "", Seq: 1 << 63, Type: "RenameZone", Skippable: true}} {
		b := h.append(nil)
		if got, ok := readHeader(b); !ok || got != h {
			t.Errorf("header %+v read back as %+v, %v", h, got, ok)
		}
		for cut := range len(b) {
			if _, ok := readHeader(b[:cut]); ok {
				t.Errorf("header %+v cut to %d bytes was read", h, cut)
			}
		}
	}
	if _, ok := readHeader(nil); ok {
		t.Error("no Extensions read as a header")
	}
}

// applyCmd hands n cmd's entry at index, as this build appends it.
func applyCmd(t *testing.T, n *Node, index uint64, origin string, seq uint64, cmd ipam.Command) {
	t.Helper()
	data, ext := entryOf(t, origin, seq, cmd)
	n.applyEntry(index, data, ext)
}

// entryOf is cmd's entry as this build appends it: its data and its header.
func entryOf(t *testing.T, origin string, seq uint64, cmd ipam.Command) ([]byte, []byte) {
	t.Helper()
	data, err := appendEntry(nil, origin, seq, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return data, header{Origin: origin, Seq: seq, Type: ipam.CommandType(cmd)}.append(nil)
}

// applierNode is a node whose entries the test hands to applyEntry itself, in place of
// Raft's applier, with the base site applied as entry 1 from another node.
func applierNode(t *testing.T) (*Node, *ipam.IPAM) {
	t.Helper()
	cfg, err := config.Parse("site.yaml", []byte("domain: k8s.example.com\n"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	quiet := slog.New(slog.DiscardHandler)
	n, err := New(Options{Site: cfg, DataDir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.logs.Close(); n.lock.Close() })
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "infrad.db"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := ipam.New(ipam.Options{Store: st, Log: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	n.ipam = m
	applyCmd(t, n, 1, "elsewhere/1", 1, ipam.Reconcile{Stamp: ipam.Stamp{At: time.Now()}, Source: "site.yaml", File: fixture.Site(t)})
	m.Flush()
	if _, ok := m.Model().Host("cp01"); !ok {
		t.Fatal("another node's entry was not applied")
	}
	return n, m
}

// TestUnknownEntryStops: an entry of a command this build does not know (a newer
// build's, in a cluster of two builds) stops the node loudly, its store at the entry
// before, unless the entry says it may be skipped; a skipped one changes nothing, and
// the entries after it apply.
func TestUnknownEntryStops(t *testing.T) {
	n, m := applierNode(t)
	serial := m.Model().Serial()
	future := `{"origin":"newer/1","seq":1,%s"type":"RenameZone","command":{"at":"2027-01-01T00:00:00Z"}}`
	func() {
		defer func() {
			msg, _ := recover().(string)
			if !strings.Contains(msg, "cannot apply") || !strings.Contains(msg, "upgrade infrad") {
				t.Errorf("an unknown entry: got %q, want the node stopped, saying to upgrade", msg)
			}
		}()
		n.applyEntry(2, fmt.Appendf(nil, future, ""), header{Origin: "newer/1", Seq: 1, Type: "RenameZone"}.append(nil))
	}()
	if m.Applied() != 1 {
		t.Errorf("the store moved to entry %d past an entry it could not apply", m.Applied())
	}
	// Skippable as a newer build says it, in the header, and as an earlier one did,
	// in the JSON alone.
	n.applyEntry(2, fmt.Appendf(nil, future, ""), header{Origin: "newer/1", Seq: 1, Type: "RenameZone", Skippable: true}.append(nil))
	n.applyEntry(3, fmt.Appendf(nil, future, `"skippable":true,`), nil)
	applyCmd(t, n, 4, "elsewhere/1", 2, ipam.PutHost{Stamp: ipam.Stamp{At: time.Now()}, Host: site.Host{Name: "after", IP: netip.MustParseAddr("10.0.40.60")}, Create: true})
	m.Flush()
	if _, ok := m.Model().Host("after"); !ok || m.Model().Serial() == serial || m.Applied() != 4 {
		t.Errorf("the entries after a skipped one did not apply (applied %d)", m.Applied())
	}
}

// TestOwnEntryAnswersItsCaller: the node's own entry reaches the caller waiting on it,
// with the command it gave (not one decoded again) and its result, whether its header
// is in the Extensions or, appended by a leader of an earlier build, only in the JSON;
// another process's entry with the same sequence number reaches no one.
func TestOwnEntryAnswersItsCaller(t *testing.T) {
	for _, typed := range []bool{true, false} {
		t.Run(fmt.Sprintf("header in the Extensions %v", typed), func(t *testing.T) {
			ownEntryAnswers(t, typed)
		})
	}
}

func ownEntryAnswers(t *testing.T, typed bool) {
	n, m := applierNode(t)
	cmd := ipam.AllocateHost{Stamp: ipam.Stamp{At: time.Now()}, Subnet: "vm", Host: site.Host{Name: "mine"}}
	wt := n.waits.register(7, cmd)
	applyCmd(t, n, 2, "elsewhere/2", 7, ipam.AllocateHost{Stamp: ipam.Stamp{At: time.Now()}, Subnet: "vm", Host: site.Host{Name: "theirs"}})
	// The entry's own copy of the command says otherwise: the caller's is applied.
	own, ext := entryOf(t, n.origin, 7, ipam.AllocateHost{Stamp: ipam.Stamp{At: time.Now()}, Subnet: "vm", Host: site.Host{Name: "decoded"}})
	if !typed {
		ext = nil
	}
	n.applyEntry(3, own, ext)
	select {
	case r := <-wt.done:
		h, ok := r.result.(site.Host)
		if r.err != nil || !ok || h.Name != "mine" || !h.IP.IsValid() {
			t.Errorf("the caller got %v, %v; want its host with an address", r.result, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the caller was never answered")
	}
	m.Flush()
	if _, ok := m.Model().Host("theirs"); !ok {
		t.Error("the other process's entry was not applied")
	}
	if _, ok := m.Model().Host("decoded"); ok {
		t.Error("the own entry was decoded again, not applied with its caller's command")
	}
	if _, ok := n.waits.take(7); ok {
		t.Error("the waiter is still registered after its entry was applied")
	}
}

// TestCommandsEveryBuildApplies: the command types every build applies are real
// command types, and a type added since (this build's failover commands) is not
// among them, so that it is appended only once every node has said it applies it.
func TestCommandsEveryBuildApplies(t *testing.T) {
	known := ipam.CommandTypes()
	for typ := range everyBuildApplies {
		if !slices.Contains(known, typ) {
			t.Errorf("%q is no command type", typ)
		}
	}
	for _, typ := range []string{"SetDHCPServers", "SettleEnds"} {
		if everyBuildApplies[typ] {
			t.Errorf("%s, new in this build, passes for one every build applies", typ)
		}
	}
}
