package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/fixture"
	"github.com/infrad/infrad/pkg/site"
)

func changesOf(t *testing.T, m *IPAM, f ChangeFilter) []ChangeEntry {
	t.Helper()
	page, err := m.Changes(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return page.Changes
}

func commitLease(t *testing.T, m *IPAM, mac, ip, hostname string, at time.Time) {
	t.Helper()
	c := CommitLease{Stamp: Stamp{At: at}, Subnet: "vm", MAC: fixture.MAC(t, mac), IP: netip.MustParseAddr(ip), Hostname: hostname, Expires: at.Add(time.Hour)}
	if _, err := m.Apply(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func TestChangeLogSaysWhoChangedWhat(t *testing.T) {
	m, _ := newIPAM(t)
	first := changesOf(t, m, ChangeFilter{})
	if len(first) != 1 || first[0].Source != "site file" || first[0].Command != "Reconcile" {
		t.Fatalf("after the first reconcile the log holds %+v, want one entry by the site file", first)
	}
	alice := WithSource(context.Background(), "token alice")
	if _, err := m.CreateHost(alice, site.HostSpec{Name: "w01", IP: "10.0.40.20", MAC: "52:54:00:00:40:20"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.UpdateHost(alice, "w01", site.HostSpec{IP: "10.0.40.21", MAC: "52:54:00:00:40:20"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	commitLease(t, m, "52:54:00:00:40:99", "10.0.40.150", "laptop", now)
	commitLease(t, m, "52:54:00:00:40:99", "10.0.40.150", "laptop", now.Add(time.Minute)) // a renewal
	if err := m.DeleteHost(WithSource(context.Background(), "token bob"), "w01"); err != nil {
		t.Fatal(err)
	}
	// A refused change leaves no entry.
	if _, err := m.CreateHost(alice, site.HostSpec{Name: "cp01", IP: "10.0.40.30"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("got %v, want a conflict", err)
	}

	got := changesOf(t, m, ChangeFilter{})
	var summary []string
	for _, e := range got {
		var ops []string
		for _, c := range e.Changes {
			ops = append(ops, c.Op+" "+c.Kind+" "+c.Key)
		}
		summary = append(summary, e.Source+": "+strings.Join(ops, ", "))
	}
	want := []string{
		"token bob: delete host w01",
		"dhcp: create lease 10.0.40.150",
		"token alice: update host w01",
		"token alice: create host w01",
		"site file: " + strings.Join(opsOfFirst(first[0]), ", "),
	}
	if strings.Join(summary, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the log, newest first:\n%s\nwant:\n%s", strings.Join(summary, "\n"), strings.Join(want, "\n"))
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID >= got[i-1].ID {
			t.Errorf("entry %d has ID %d after %d: want newest first", i, got[i].ID, got[i-1].ID)
		}
	}
	update := got[2].Changes[0]
	var before, after site.Host
	if json.Unmarshal(update.Before, &before) != nil || json.Unmarshal(update.After, &after) != nil ||
		before.IP.String() != "10.0.40.20" || after.IP.String() != "10.0.40.21" {
		t.Errorf("the update's before and after are %s and %s, want the addresses .20 and .21", update.Before, update.After)
	}
	if got[0].Changes[0].After != nil || got[0].Changes[0].Before == nil {
		t.Errorf("a delete keeps what was, and nothing after: %+v", got[0].Changes[0])
	}

	// Filters and pages.
	if e := changesOf(t, m, ChangeFilter{Source: "alice"}); len(e) != 2 {
		t.Errorf("source alice: %d entries, want 2", len(e))
	}
	if e := changesOf(t, m, ChangeFilter{Object: "host w01"}); len(e) != 3 {
		t.Errorf("object \"host w01\": %d entries, want 3", len(e))
	}
	if e := changesOf(t, m, ChangeFilter{Object: "10.0.40.150"}); len(e) != 1 {
		t.Errorf("object 10.0.40.150: %d entries, want 1", len(e))
	}
	if e := changesOf(t, m, ChangeFilter{Since: now}); len(e) != 2 {
		t.Errorf("since the lease: %d entries, want 2 (the lease and bob's delete)", len(e))
	}
	page, err := m.Changes(context.Background(), ChangeFilter{Limit: 2})
	if err != nil || len(page.Changes) != 2 || page.Next != page.Changes[1].ID {
		t.Fatalf("a page of 2: %+v, %v", page, err)
	}
	rest := changesOf(t, m, ChangeFilter{Before: page.Next})
	if len(rest) != 3 || rest[0].ID != got[2].ID {
		t.Errorf("the next page starts at %+v, want the third entry", rest)
	}
}

func opsOfFirst(e ChangeEntry) []string {
	var ops []string
	for _, c := range e.Changes {
		ops = append(ops, c.Op+" "+c.Kind+" "+c.Key)
	}
	return ops
}

func TestChangeLogKeepsItsBounds(t *testing.T) {
	m, _ := newIPAM(t)
	set := fixture.Site(t)
	set.Changes = site.ChangeLimits{Days: 30, Entries: 5}
	if _, err := m.Reconcile("site.yaml", set); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 8 {
		h := site.Host{Name: fmt.Sprintf("w%02d", i), IP: netip.MustParseAddr(fmt.Sprintf("10.0.40.%d", 20+i))}
		if _, err := m.Apply(context.Background(), PutHost{Stamp: Stamp{At: at.AddDate(0, 0, i)}, Host: h, Create: true}); err != nil {
			t.Fatal(err)
		}
	}
	if got := changesOf(t, m, ChangeFilter{}); len(got) != 5 || got[4].Changes[0].Key != "w03" {
		t.Fatalf("kept %d entries, the oldest %+v: want the last 5, from w03", len(got), got[len(got)-1])
	}
	// 40 days later: everything older than 30 days goes.
	h := site.Host{Name: "late", IP: netip.MustParseAddr("10.0.40.40")}
	if _, err := m.Apply(context.Background(), PutHost{Stamp: Stamp{At: at.AddDate(0, 0, 47)}, Host: h, Create: true}); err != nil {
		t.Fatal(err)
	}
	if got := changesOf(t, m, ChangeFilter{}); len(got) != 1 || got[0].Changes[0].Key != "late" {
		t.Errorf("after 40 days the log holds %d entries, want only the newest", len(got))
	}
}

// TestChangeLogUnderConcurrentWrites: writers at once, each finding its own entry in
// the log as soon as its write is acknowledged, and the entries numbered without a
// gap or a repeat.
func TestChangeLogUnderConcurrentWrites(t *testing.T) {
	m, _ := newIPAM(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			ctx := WithSource(context.Background(), fmt.Sprintf("token writer%d", w))
			for i := range 10 {
				name := fmt.Sprintf("h%d-%d", w, i)
				if _, err := m.CreateHost(ctx, site.HostSpec{Name: name, IP: fmt.Sprintf("10.0.40.%d", 20+w*10+i)}); err != nil {
					t.Error(err)
					return
				}
				page, err := m.Changes(context.Background(), ChangeFilter{Object: "host " + name, Limit: 1})
				if err != nil || len(page.Changes) != 1 || page.Changes[0].Source != fmt.Sprintf("token writer%d", w) {
					t.Errorf("host %s acknowledged, and the log has %+v (%v)", name, page.Changes, err)
				}
			}
		})
	}
	wg.Wait()
	all := changesOf(t, m, ChangeFilter{Limit: MaxChangePage})
	if len(all) != 41 {
		t.Fatalf("%d entries, want 41 (the reconcile and 40 hosts)", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID != all[i-1].ID-1 {
			t.Fatalf("entry IDs %d then %d: want one less each time", all[i-1].ID, all[i].ID)
		}
	}
}

func TestPinLease(t *testing.T) {
	m, _ := newIPAM(t)
	now := time.Now()
	commitLease(t, m, "52:54:00:00:40:99", "10.0.40.150", "laptop", now)
	commitLease(t, m, "52:54:00:00:40:98", "10.0.40.151", "", now)

	h, err := m.PinLease(context.Background(), netip.MustParseAddr("10.0.40.150"), "")
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "laptop" || h.IP.String() != "10.0.40.150" || h.MAC.String() != "52:54:00:00:40:99" || h.Owner != site.OwnerAPI {
		t.Fatalf("pinned %+v, want host laptop at the lease's address and MAC", h)
	}
	md := m.Model()
	if got, ok := md.HostAt(netip.MustParseAddr("10.0.40.150")); !ok || got.Name != "laptop" {
		t.Errorf("the model has no host at the pinned address")
	}
	if l, ok := md.Lease(netip.MustParseAddr("10.0.40.150")); !ok || l.MAC != h.MAC {
		t.Errorf("the lease went: its client must keep its address without a break")
	}
	if n, ok := md.HostnameOf(md.FQDN("laptop")); !ok || n != "laptop" {
		t.Errorf("laptop's name is not the host's now")
	}
	// A renewal of the pinned client is the reservation's.
	commitLease(t, m, "52:54:00:00:40:99", "10.0.40.150", "laptop", now.Add(time.Minute))

	_, err = m.PinLease(context.Background(), netip.MustParseAddr("10.0.40.151"), "")
	wantErr(t, err, ErrInvalid, "name", "no hostname")
	if _, err := m.PinLease(context.Background(), netip.MustParseAddr("10.0.40.151"), "printer"); err != nil {
		t.Fatal(err)
	}
	_, err = m.PinLease(context.Background(), netip.MustParseAddr("10.0.40.152"), "x")
	wantErr(t, err, ErrNotFound, "", "10.0.40.152")
}

// TestPinLeaseRace: two admins pin one lease at the same moment under different
// names, over many rounds: exactly one host comes of it.
func TestPinLeaseRace(t *testing.T) {
	m := newOn(t, openStore(t, filepath.Join(t.TempDir(), "infrad.db")))
	if _, err := m.Reconcile("site.yaml", fixture.Site(t)); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for round := range 20 {
		ip := fmt.Sprintf("10.0.40.%d", 150+round)
		commitLease(t, m, fmt.Sprintf("52:54:00:00:41:%02x", round), ip, "", now)
		var wg sync.WaitGroup
		var won sync.Map
		for _, name := range []string{"a", "b"} {
			wg.Go(func() {
				if _, err := m.PinLease(context.Background(), netip.MustParseAddr(ip), fmt.Sprintf("%s%d", name, round)); err == nil {
					won.Store(name, true)
				} else if !errors.Is(err, ErrConflict) {
					t.Errorf("round %d: %v, want success or a conflict", round, err)
				}
			})
		}
		wg.Wait()
		n := 0
		won.Range(func(any, any) bool { n++; return true })
		hosts := 0
		for _, h := range m.Model().Hosts() {
			if h.IP.String() == ip {
				hosts++
			}
		}
		if n != 1 || hosts != 1 {
			t.Fatalf("round %d: %d pins succeeded and %d hosts hold %s, want 1 and 1", round, n, hosts, ip)
		}
	}
}

func TestTokens(t *testing.T) {
	m, _ := newIPAM(t)
	hash := strings.Repeat("ab", 32)
	if _, err := m.CreateToken(WithSource(context.Background(), "token api-token"), Token{Name: "ci", Hash: hash, ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	if tok, ok := m.Model().TokenWithHash(hash); !ok || tok.Name != "ci" || !tok.ReadOnly {
		t.Fatalf("token by hash: %+v %v", tok, ok)
	}
	_, err := m.CreateToken(context.Background(), Token{Name: "ci", Hash: strings.Repeat("cd", 32)})
	wantErr(t, err, ErrConflict, "name", `"ci"`)
	_, err = m.CreateToken(context.Background(), Token{Name: FileTokenName, Hash: hash})
	wantErr(t, err, ErrInvalid, "name", "file")
	_, err = m.CreateToken(context.Background(), Token{Name: "Bad Name", Hash: hash})
	wantErr(t, err, ErrInvalid, "name", "Bad Name")

	e := changesOf(t, m, ChangeFilter{Object: "token ci"})
	if len(e) != 1 || strings.Contains(string(e[0].Changes[0].After), hash) {
		t.Fatalf("the log's entry for the token: %+v, want one, without the hash", e)
	}
	if err := m.RevokeToken(context.Background(), "ci"); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Model().TokenWithHash(hash); ok {
		t.Error("a revoked token is still known")
	}
	wantErr(t, m.RevokeToken(context.Background(), "ci"), ErrNotFound, "", `"ci"`)
}

func TestEntryTimeReadsTheStoredForm(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 30, 0, 123456789, time.UTC)
	raw, err := json.Marshal(&ChangeEntry{At: at, Source: "dhcp", Command: "CommitLease", Changes: []ObjectChange{{Kind: "lease", Key: "10.0.0.1", Op: "create"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := entryTime(raw); !ok || !got.Equal(at) {
		t.Errorf("entryTime(%s) = %v %v, want %v", raw, got, ok, at)
	}
	if got, ok := entryTime([]byte(`{"source":"x","at":"2026-12-01T09:30:00Z"}`)); !ok || got.Hour() != 9 {
		t.Errorf("another order of fields: %v %v", got, ok)
	}
}

// TestChangeLogEntryListsAHundred: a reconcile that changes more objects lists the
// first hundred and counts the rest.
func TestChangeLogEntryListsAHundred(t *testing.T) {
	m := newOn(t, openStore(t, filepath.Join(t.TempDir(), "infrad.db")))
	hosts := func(prefix string, from int) []site.Host {
		var hs []site.Host
		for i := range 60 {
			hs = append(hs, site.Host{Name: fmt.Sprintf("%s%02d", prefix, i), IP: netip.MustParseAddr(fmt.Sprintf("10.0.40.%d", from+i))})
		}
		return hs
	}
	set := fixture.Site(t)
	set.Hosts = append(set.Hosts, hosts("n", 30)...)
	if _, err := m.Reconcile("site.yaml", set); err != nil {
		t.Fatal(err)
	}
	got := changesOf(t, m, ChangeFilter{})
	// 2 subnets, 62 hosts, 2 records.
	if len(got) != 1 || len(got[0].Changes) != 66 || got[0].More != 0 {
		t.Fatalf("a reconcile of 66 objects: %d entries, %d listed, %d more", len(got), len(got[0].Changes), got[0].More)
	}
	set.Hosts = append(fixture.Site(t).Hosts, hosts("x", 121)...) // 60 go, 60 come
	if _, err := m.Reconcile("site.yaml", set); err != nil {
		t.Fatal(err)
	}
	e := changesOf(t, m, ChangeFilter{Limit: 1})[0]
	if len(e.Changes) != 100 || e.More != 20 {
		t.Errorf("a reconcile of 120 changes lists %d and counts %d more, want 100 and 20", len(e.Changes), e.More)
	}
}

// TestKeyRingChangesAreLoggedWithoutKeys: a key ring's change is in the change log,
// by its ring's name, with nothing of the keys.
func TestKeyRingChangesAreLoggedWithoutKeys(t *testing.T) {
	m, _ := newIPAM(t)
	secret := []byte(`{"keys":[{"private":"c2VjcmV0"}]}`)
	if ok, err := m.SwapKeyring(t.Context(), "dnssec", nil, secret); !ok || err != nil {
		t.Fatalf("swap: %v %v", ok, err)
	}
	if ok, err := m.SwapKeyring(t.Context(), "dnssec", nil, secret); ok || err != nil {
		t.Fatalf("a second swap from nothing: want refused, got %v %v", ok, err)
	}
	if got, _ := m.Keyring("dnssec"); string(got) != string(secret) {
		t.Fatalf("the ring read back: %s", got)
	}
	page, err := m.Changes(t.Context(), ChangeFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range page.Changes {
		raw, _ := json.Marshal(e)
		if strings.Contains(string(raw), "c2VjcmV0") {
			t.Errorf("the change log holds the keys: %s", raw)
		}
		if e.Source == "keyring dnssec" {
			found = true
		}
	}
	if !found {
		t.Errorf("no change-log entry from the key ring: %+v", page.Changes)
	}
}
