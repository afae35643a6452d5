package ipam

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/internal/fixture"
	"github.com/infrad/infrad/pkg/ipam/writer"
	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

// invariants checks what the write path promises of a model, and that the store holds
// exactly the model: every rule of Set.Problems; no address held twice (two hosts, a
// host and a lease, two live leases); one live lease per client; every index true to
// the objects; the DNS names index exactly what the hosts, leases and records make;
// nothing at a host's or a named lease's name that redefines its address.
func invariants(t *testing.T, m *Model, st *store.Store, now time.Time) {
	t.Helper()
	set := m.Set()
	for _, p := range set.Problems() {
		t.Errorf("rule broken: %s", p)
	}
	holder := map[netip.Addr]string{}
	hold := func(a netip.Addr, who string) {
		if prev, ok := holder[a]; ok {
			t.Errorf("%s is held twice: by %s and %s", a, prev, who)
		}
		holder[a] = who
	}
	for _, h := range set.Hosts {
		for _, a := range h.Addrs() {
			hold(a, "host "+h.Name)
		}
		if name, _ := m.hostByIP.Get(h.IP); name != h.Name {
			t.Errorf("hostByIP[%s] = %q, want %q", h.IP, name, h.Name)
		}
		if name, _ := m.hostByMAC.Get(h.MAC); !h.MAC.IsZero() && name != h.Name {
			t.Errorf("hostByMAC[%s] = %q, want %q", h.MAC, name, h.Name)
		}
		for _, rr := range m.RecordsAt(m.FQDN(h.Name)) {
			if typ := rr.Header().Rrtype; typ == 1 || typ == 28 || typ == 5 {
				t.Errorf("a record redefines host %s: %s", h.Name, rr)
			}
		}
	}
	addrs := 0
	for _, h := range set.Hosts {
		addrs += len(h.Addrs())
	}
	if m.hostByIP.Len() != addrs || m.hostByMAC.Len() > len(set.Hosts) {
		t.Errorf("host indexes: %d by IP, %d by MAC, for %d hosts of %d addresses", m.hostByIP.Len(), m.hostByMAC.Len(), len(set.Hosts), addrs)
	}
	clients := map[site.MAC]netip.Addr{}
	clients6 := map[string]netip.Addr{}
	names := map[string]netip.Addr{} // a v6 lease's under "6 " and its name
	// what the indexes by client and by hostname hold, ended or not
	active, active6, named, named6 := 0, 0, map[string]bool{}, map[string]bool{}
	released := 0
	for _, l := range m.Leases() {
		v6 := l.IP.Is6()
		if v6 != (l.Client != "") && !l.Declined {
			t.Errorf("lease %s has client %q", l.IP, l.Client)
		}
		switch {
		case l.Quarantined():
		case v6:
			active6++
		default:
			active++
		}
		if l.Released != 0 {
			released++
			if l.Hostname != "" || m.shape.DHCPServers <= 1 {
				t.Errorf("lease %s is released and waits (%d), named %q, on a site of %d DHCP servers", l.IP, l.Released, l.Hostname, m.shape.DHCPServers)
			}
		}
		if l.Hostname != "" && v6 {
			named6[l.Hostname] = true
		} else if l.Hostname != "" {
			named[l.Hostname] = true // (an ended lease's name may be taken again before it goes)
		}
		if l.Ended(now) {
			continue
		}
		if h, ok := m.HostAt(l.IP); !ok || h.MAC != l.MAC || l.Declined { // a reservation's lease shares its host's address
			hold(l.IP, "the lease of "+l.MAC.String()+" "+l.Client)
		}
		if _, ok := site.LeaseHome(m.shape.Subnets, l.IP, l.Length); !ok {
			t.Errorf("lease %s is in no subnet", l.Name())
		}
		if l.Quarantined() {
			continue
		}
		if v6 {
			if prev, ok := clients6[l.Client]; ok {
				t.Errorf("client %s holds %s and %s", l.Client, prev, l.IP)
			}
			clients6[l.Client] = l.IP
			if c, _ := m.LeaseOfClient(l.Client); c != l {
				t.Errorf("the lease of %s is %+v, want %+v", l.Client, c, l)
			}
		} else {
			if prev, ok := clients[l.MAC]; ok {
				t.Errorf("client %s holds %s and %s", l.MAC, prev, l.IP)
			}
			clients[l.MAC] = l.IP
			if c, _ := m.LeaseOf(l.MAC); c != l {
				t.Errorf("the lease of %s is %+v, want %+v", l.MAC, c, l)
			}
		}
		if l.Hostname == "" {
			continue
		}
		key := l.Hostname
		if v6 {
			key = "6 " + key
		}
		if prev, ok := names[key]; ok {
			t.Errorf("hostname %s is the lease of %s and of %s", l.Hostname, prev, l.IP)
		}
		names[key] = l.IP
		if c, _ := m.LeaseNamed(l.Hostname, v6); c != l {
			t.Errorf("the lease named %s is %+v, want %+v", l.Hostname, c, l)
		}
		if other, ok := m.LeaseNamed(l.Hostname, !v6); ok && !other.Ended(now) && (other.MAC != l.MAC || l.MAC.IsZero()) {
			t.Errorf("hostname %s is the lease of %s and of %s, another machine's", l.Hostname, l.IP, other.IP)
		}
		if _, ok := m.Host(l.Hostname); ok {
			t.Errorf("lease %s has host %q's name", l.IP, l.Hostname)
		}
		if len(m.RecordsAt(m.FQDN(l.Hostname))) > 0 {
			t.Errorf("records stand at lease %s's name %s", l.IP, l.Hostname)
		}
		// (A lease named before its client's MAC became a host's keeps the name until
		// its next commit, which drops it: a reserved client is known by its host's name.)
	}
	for _, a := range append(slices.Collect(maps.Keys(holder)), m.shape.DNS.NameServers...) {
		if n, _ := m.Node(string(site.ReverseName(a))); len(n[dns.TypePTR]) > 1 {
			t.Errorf("%s resolves to %d names: %v", a, len(n[dns.TypePTR]), n[dns.TypePTR])
		}
	}
	if m.released != released {
		t.Errorf("the model counts %d released leases, and holds %d", m.released, released)
	}
	if n, want := m.leases.byMAC.Len(), active; n != want {
		t.Errorf("the index by MAC has %d leases, want %d", n, want)
	}
	if n, want := m.leases.byName.Len(), len(named); n != want {
		t.Errorf("the index by hostname has %d leases, want %d", n, want)
	}
	if n, want := m.leases.byClient.Len(), active6; n != want {
		t.Errorf("the index by DHCPv6 client has %d leases, want %d", n, want)
	}
	if n, want := m.leases.byName6.Len(), len(named6); n != want {
		t.Errorf("the index by DHCPv6 hostname has %d leases, want %d", n, want)
	}
	if want := namesOf(&Model{shape: m.shape, hosts: m.hosts, leases: m.leases, records: m.records}); !sameCounts(m, want) {
		t.Errorf("the DNS names index is not what the objects make")
	}
	if st == nil {
		return
	}
	stored, _, err := load(st)
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(stored.Set().Subnets, set.Subnets) || !sameJSON(stored.Hosts(), set.Hosts) ||
		!sameJSON(stored.Records(), set.Records) || !sameJSON(stored.Leases(), m.Leases()) || stored.serial != m.serial {
		t.Errorf("the store does not hold what the model does")
	}
}

func sameCounts(m *Model, want interface {
	Len() int
	Get(site.Name) (int, bool)
}) bool {
	if m.names.Len() != want.Len() {
		return false
	}
	for it := m.names.Iterator(); !it.Done(); {
		k, v, _ := it.Next()
		if w, _ := want.Get(k); w != v {
			return false
		}
	}
	return true
}

// universe is a small world of names, addresses and MACs, so that random commands
// collide often.
type universe struct{ now time.Time }

func (u universe) ip(i byte) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 0, 40, []byte{20, 21, 22, 150, 151, 152, 153, 3}[i%8]})
}
func (u universe) mac(i byte) site.MAC { return site.MAC{0x52, 0x54, 0, 0, 0, i % 6} }

// ip6 is an address of the subnet vm6 (universeSite): a host's, or of its DHCP range.
func (u universe) ip6(i byte) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, 0x40, 14: 1, 15: []byte{0x20, 0x21, 0x50, 0x51, 0x52}[i%5]})
}

// client6 is a DHCPv6 client: a DUID-LL of mac(i) or one without a MAC, and an IAID.
func (u universe) client6(i byte) (string, site.MAC) {
	if i%4 == 3 {
		return fmt.Sprintf("0004aabbccdd/%08x", i%2), site.MAC{}
	}
	m := u.mac(i)
	return fmt.Sprintf("00030001%x/00000001", m[:]), m
}

// universeSite is the fixture's site with an IPv6 subnet of nodes, vm6, whose DHCP
// range is fd00:0:40::150 to ::152, and which delegates the /56s of fd00:0:100::/55.
func universeSite(t testing.TB) site.Set {
	set := fixture.Site(t)
	set.Subnets = append(set.Subnets, site.Subnet{Name: "vm6", CIDR: netip.MustParsePrefix("fd00:0:40::/64"), Purpose: site.PurposeNodes,
		DHCP6: site.DHCP6Stateful, Ranges: []site.Range{{Kind: site.RangeDHCP, Start: netip.MustParseAddr("fd00:0:40::150"), End: netip.MustParseAddr("fd00:0:40::152")}},
		Delegate: &site.Delegation{Prefix: netip.MustParsePrefix("fd00:0:100::/55"), Length: 56}})
	return set
}
func (u universe) name(i byte) string { return []string{"a", "b", "c", "cp01", "laptop", "x"}[i%6] }

// command makes one command of the universe from four bytes.
func (u universe) command(b [4]byte) Command {
	at := Stamp{At: u.now}
	if b[0] >= 0xc0 { // DHCPv6's commands, and dual-stack hosts
		id, mac := u.client6(b[1])
		switch b[0] % 5 {
		case 4: // a prefix delegated: one of the pool's two, or one it does not hold
			p := []netip.Addr{netip.MustParseAddr("fd00:0:100::"), netip.MustParseAddr("fd00:0:100:100::"), netip.MustParseAddr("fd00:0:100:200::")}[b[2]%3]
			return CommitLease6{Stamp: at, Subnet: "vm6", Client: id + "/pd", MAC: mac, IP: p, Length: 56, Expires: u.now.Add(time.Hour), Renewal: b[3]%2 == 0}
		case 0:
			return CommitLease6{Stamp: at, Subnet: "vm6", Client: id, MAC: mac, IP: u.ip6(b[2]), Hostname: u.name(b[3]), Expires: u.now.Add(time.Hour), Renewal: b[3]%2 == 0}
		case 1:
			return ReleaseLease6{Stamp: at, IP: u.ip6(b[2]), Client: id, Granted: uint64(b[3]) % 3}
		case 2:
			return DeclineLease6{Stamp: at, IP: u.ip6(b[2]), Client: id, Until: u.now.Add(time.Minute)}
		}
		return PutHost{Stamp: at, Host: site.Host{Name: u.name(b[1]), IP: u.ip(b[2]), IP6: u.ip6(b[2]), MAC: u.mac(b[3])}, Create: b[3]%2 == 0}
	}
	switch b[0] % 10 {
	case 0:
		return PutHost{Stamp: at, Host: site.Host{Name: u.name(b[1]), IP: u.ip(b[2]), MAC: u.mac(b[3])}, Create: b[3]%2 == 0}
	case 1:
		return DeleteHost{Stamp: at, Name: u.name(b[1])}
	case 2:
		return AllocateHost{Stamp: at, Subnet: "vm", Host: site.Host{Name: u.name(b[1])}}
	case 3, 4:
		if b[0] == 3 {
			return TrackGrants{Stamp: at}
		}
		return CommitLease{Stamp: at, Subnet: "vm", MAC: u.mac(b[1]), IP: u.ip(b[2]), Hostname: u.name(b[3]), Expires: u.now.Add(time.Hour), Renewal: b[3]%2 == 0}
	case 5:
		switch b[3] % 3 {
		case 0:
			return ReleaseClientLease{Stamp: at, IP: u.ip(b[1]), MAC: u.mac(b[2]), Expires: []time.Time{u.now.Add(time.Hour), u.now}}
		case 1:
			return ReleaseClientLease{Stamp: at, IP: u.ip(b[1]), MAC: u.mac(b[2]), Granted: uint64(b[3]) / 3}
		}
		return ReleaseLease{Stamp: at, IP: u.ip(b[1]), MAC: u.mac(b[2])}
	case 6:
		return DeclineLease{Stamp: at, IP: u.ip(b[1]), MAC: u.mac(b[2]), Until: u.now.Add(time.Minute)}
	case 9:
		return SettleEnds{Stamp: at, Through: uint64(b[1]) * 8}
	case 8:
		if b[3]%2 == 0 { // an import: a host and a lease, both or neither
			return Import{Stamp: at, Hosts: []site.Host{{Name: u.name(b[1]), IP: u.ip(b[2]), MAC: u.mac(b[3])}},
				Leases: []ImportedLease{{MAC: u.mac(b[1]), IP: u.ip(b[3]), Hostname: u.name(b[2]), Expires: u.now.Add(time.Hour)}}}
		}
		return UpdateRecords{Stamp: at, Zone: "k8s.example.com.",
			Changes: []RecordChange{{Name: site.Name(u.name(b[1]) + ".k8s.example.com.")}}}
	case 7:
		name := site.Name(u.name(b[1]) + ".k8s.example.com.")
		return UpdateRecords{Stamp: at, Zone: "k8s.example.com.",
			Prereqs: []Prereq{{Name: name, Class: "NONE", Type: "ANY"}},
			Changes: []RecordChange{{Add: true, Name: name, Type: []string{"A", "TXT", "CNAME"}[b[2]%3],
				Value: []string{u.ip(b[3]).String(), `"t"`, "api.k8s.example.com."}[b[2]%3]}}}
	default:
		return UpdateRecords{Stamp: at, Zone: "k8s.example.com.",
			Changes: []RecordChange{{Name: site.Name(u.name(b[1]) + ".k8s.example.com.")}}}
	}
}

// TestStorm races every kind of writer over the same names and addresses: many
// goroutines apply random commands at once (so they share transactions), and then
// every invariant holds, in the model and in the store.
func TestStorm(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "infrad.db"))
	m := newOn(t, st)
	if _, err := m.Reconcile("site.yaml", universeSite(t)); err != nil {
		t.Fatal(err)
	}
	u := universe{now: time.Now()}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 300 {
				var b [4]byte
				for i := range b {
					b[i] = byte(r.Uint32())
				}
				m.Apply(t.Context(), u.command(b))
			}
		})
	}
	// Every model published on the way keeps the promises too.
	done := make(chan struct{})
	checked := 0
	go func() {
		defer close(done)
		for {
			model, changed := m.Watch()
			invariants(t, model, nil, u.now)
			checked++
			select {
			case <-changed:
			case <-time.After(100 * time.Millisecond):
				return
			}
		}
	}()
	wg.Wait()
	<-done
	invariants(t, m.Model(), st, u.now)
	t.Logf("%d models checked on the way", checked)
}

// TestRandomSequences is FuzzCommands with seeded random sequences, long enough to
// meet the rare orders (a record, then a lease asking for its name), on one box and
// on three, where a lease ended early holds its address until SettleEnds.
func TestRandomSequences(t *testing.T) {
	for _, servers := range []int{0, 3} {
		t.Run(fmt.Sprintf("%d DHCP servers", servers), func(t *testing.T) { randomSequence(t, servers) })
	}
}

func randomSequence(t *testing.T, servers int) {
	st := openStore(t, filepath.Join(t.TempDir(), "infrad.db"))
	m := newOn(t, st)
	if _, err := m.Reconcile("site.yaml", universeSite(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Apply(t.Context(), SetDHCPServers{Servers: servers}); err != nil {
		t.Fatal(err)
	}
	u := universe{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	r := rand.New(rand.NewPCG(1, 2))
	released := 0
	for i := range 3000 {
		var b [4]byte
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		cmd := u.command(b)
		m.Apply(t.Context(), cmd)
		invariants(t, m.Model(), nil, u.now)
		if t.Failed() {
			t.Fatalf("step %d: after %#v", i, cmd)
		}
		released = max(released, m.Model().Released())
	}
	invariants(t, m.Model(), st, u.now)
	if servers > 1 && released == 0 {
		t.Error("no lease waited released: the sequence never tried the rule")
	}
}

// FuzzCommands applies a sequence of commands drawn from the universe, checking the
// invariants after each one.
func FuzzCommands(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 3, 4, 4, 4, 7, 3, 0, 0, 2, 1, 1, 1, 8, 3, 0, 0})
	f.Add([]byte{3, 0, 3, 4, 3, 1, 3, 4, 5, 0, 3, 0, 6, 1, 4, 0, 0, 4, 0, 0})
	f.Add([]byte{7, 0, 0, 5, 7, 0, 1, 5, 0, 0, 0, 0, 1, 0, 0, 0, 2, 2, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 400 {
			return
		}
		st := openStore(t, filepath.Join(t.TempDir(), "infrad.db"))
		m := newOn(t, st)
		if _, err := m.Reconcile("site.yaml", universeSite(t)); err != nil {
			t.Fatal(err)
		}
		// An odd length: three boxes, where a lease ended early holds its address.
		if _, err := m.Apply(t.Context(), SetDHCPServers{Servers: 3 * (len(data) % 2)}); err != nil {
			t.Fatal(err)
		}
		u := universe{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
		for i := 0; i+4 <= len(data); i += 4 {
			cmd := u.command([4]byte(data[i : i+4]))
			m.Apply(t.Context(), cmd)
			invariants(t, m.Model(), nil, u.now)
			if t.Failed() {
				t.Fatalf("after %#v", cmd)
			}
		}
		invariants(t, m.Model(), st, u.now)
	})
}

// roundTrip is cmd written and read back as the log carries it (pkg/cluster's
// entries hold MarshalCommand's JSON under CommandType's name).
func roundTrip(t *testing.T, cmd Command) Command {
	t.Helper()
	body, err := MarshalCommand(cmd)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeCommand(CommandType(cmd), body)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

func TestCommandsRoundTrip(t *testing.T) {
	u := universe{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	for i := range 64 {
		cmd := u.command([4]byte{byte(i), byte(i * 7), byte(i * 13), byte(i * 29)})
		back := roundTrip(t, cmd)
		if !reflect.DeepEqual(back, cmd) {
			t.Errorf("got %#v, want %#v", back, cmd)
		}
	}
	if _, err := DecodeCommand("Nope", []byte(`{}`)); err == nil {
		t.Error("an unknown command decoded")
	}
}

// TestLeaseIndexesUndo changes the writer's lease indexes in place and undoes the
// changes, as a refused command does: the indexes hold what they held, and the
// published model they were cloned from never saw a change.
func TestLeaseIndexesUndo(t *testing.T) {
	m, _ := newIPAM(t)
	u := universe{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	for i := range byte(3) {
		c := CommitLease{Stamp: Stamp{At: u.now}, Subnet: "vm", MAC: u.mac(i), IP: u.ip(3 + i), Hostname: u.name(i), Expires: u.now.Add(time.Hour)}
		if _, err := m.Apply(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	published := m.Model()
	want := published.Leases()
	tx := newTxn(published, published.leases.clone(), endingsOf(published))
	for round := range 2 {
		tx.begin(u.now, 0)
		tx.deleteLease(u.ip(3))
		tx.putLease(Lease{IP: u.ip(4), MAC: u.mac(4), Hostname: u.name(0), Expires: u.now.Add(time.Minute)})
		tx.putLease(Lease{IP: u.ip(5), MAC: u.mac(2), Expires: u.now.Add(time.Minute)})
		tx.putLease(Lease{IP: u.ip(6), Expires: u.now.Add(time.Minute), Declined: true})
		if got := published.Leases(); !slices.Equal(got, want) {
			t.Fatalf("round %d: the published model changed with the writer's indexes: %v", round, got)
		}
		tx.undo()
		if got := tx.m.Leases(); !slices.Equal(got, want) {
			t.Fatalf("round %d: after undo the leases are %v, want %v", round, got, want)
		}
		invariants(t, tx.m, nil, u.now)
		for _, l := range want {
			if got, _ := tx.m.LeaseOf(l.MAC); got != l {
				t.Errorf("round %d: the lease of %s is %+v, want %+v", round, l.MAC, got, l)
			}
		}
	}
}

// failing is a command whose write fails after it began, as a bucket's refusal of a
// key would: its transaction rolls back.
type failing struct{}

func (failing) apply(*txn) (any, error) { return nil, abort(errors.New("the bucket said no")) }
func (failing) time() time.Time         { return time.Now() }
func (failing) source() string          { return "" }

// TestAbortedCommandLeavesItsBatch: a command that fails after it wrote leaves
// nothing, and the commands that shared its transaction are committed as if each had
// been alone, so a box that batched the same log differently ends the same. The
// writer's lease indexes carry nothing of the rolled-back attempt.
func TestAbortedCommandLeavesItsBatch(t *testing.T) {
	m, st := newIPAM(t)
	u := universe{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	lease := func(i byte) Command {
		return CommitLease{Stamp: Stamp{At: u.now}, Subnet: "vm", MAC: u.mac(i), IP: u.ip(3 + i), Hostname: u.name(i), Expires: u.now.Add(time.Hour)}
	}
	if _, err := m.Apply(t.Context(), lease(0)); err != nil {
		t.Fatal(err)
	}
	m.Flush()
	before, after := &writer.Entry[Command]{Cmd: lease(1)}, &writer.Entry[Command]{Cmd: lease(2)}
	failed := &writer.Entry[Command]{Cmd: failing{}}
	if err := m.commit([]*writer.Entry[Command]{before, failed, after}); err != nil {
		t.Fatal(err)
	}
	if before.Err != nil || after.Err != nil || failed.Err == nil {
		t.Fatalf("outcomes %v, %v, %v: want the leases committed and the failing command refused", before.Err, failed.Err, after.Err)
	}
	for i := range byte(3) {
		if l, ok := m.Model().LeaseOf(u.mac(i)); !ok || l.IP != u.ip(3+i) {
			t.Errorf("client %d has %+v, %v", i, l, ok)
		}
	}
	invariants(t, m.Model(), st, u.now)
}
