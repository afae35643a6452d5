package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// A change is checked against its neighbourhood, not the whole site: the objects it
// could break a rule with, found through the model's indexes. The neighbourhood is a
// Set, and the rules are Set.Problems, the same that check a site file: a change is
// refused when the neighbourhood has a problem after it that it did not have before.
// So the API and the file refuse exactly the same things, and a write costs what its
// neighbourhood costs, whatever the size of the site.

// neighbourhood collects objects for a local Set, each once.
type neighbourhood struct {
	m       *Model
	set     site.Set
	hosts   map[string]bool
	records map[string]bool
}

func (t *txn) neighbourhood() *neighbourhood {
	sh := t.m.shape
	n := &neighbourhood{m: t.m, set: site.Set{Domain: sh.Domain, Zones: sh.Zones, Subnets: slices.Clone(sh.Subnets), DNS: sh.DNS, Boot: sh.Boot},
		hosts: map[string]bool{}, records: map[string]bool{}}
	for _, a := range sh.DNS.NameServers { // which of them the glue name answers for
		if h, ok := t.m.HostAt(a); ok {
			n.addHost(h)
		}
	}
	return n
}

func (n *neighbourhood) addHost(h site.Host) {
	if !n.hosts[h.Name] {
		n.hosts[h.Name] = true
		n.set.Hosts = append(n.set.Hosts, h)
	}
}

func (n *neighbourhood) addHostNamed(name string) {
	if h, ok := n.m.Host(name); ok {
		n.addHost(h)
	}
}

func (n *neighbourhood) addRecord(r site.Record) {
	if id := r.ID(); !n.records[id] {
		n.records[id] = true
		n.set.Records = append(n.set.Records, r)
	}
}

// addRecordsAt adds the records at name and, when name is a host's, the host.
func (n *neighbourhood) addRecordsAt(name site.Name) {
	ids, _ := n.m.recordsAt.Get(name)
	for _, id := range ids {
		if r, ok := n.m.Record(id); ok {
			n.addRecord(r)
		}
	}
	if host, ok := n.m.HostnameOf(name); ok {
		n.addHostNamed(host)
	}
	if a, ok := site.ReverseAddr(name); ok {
		if h, ok := n.m.HostAt(a); ok {
			n.addHost(h)
		}
	}
}

// aroundHost adds what h could clash with: hosts of the same name, address or MAC,
// and the records at its name.
func (n *neighbourhood) aroundHost(h site.Host) {
	n.addHostNamed(h.Name)
	for _, a := range h.Addrs() {
		if other, ok := n.m.HostAt(a); ok {
			n.addHost(other)
		}
		n.addRecordsAt(site.ReverseName(a))
	}
	if other, ok := n.m.HostWithMAC(h.MAC); ok && !h.MAC.IsZero() {
		n.addHost(other)
	}
	if other, ok := n.m.HostWithDUID(h.DUID); ok && h.DUID != "" {
		n.addHost(other)
	}
	n.addRecordsAt(n.m.FQDN(h.Name))
}

// check compares the problems of the neighbourhood before and after the object of
// list at key (none: "") leaves it and v arrives (nil: none), last, so that the rules
// blame it.
func check[T any](n *neighbourhood, list string, items func(*site.Set) *[]T, keyOf func(T) string, key string, v *T) error {
	before := n.set.Problems()
	after := n.set
	l := slices.DeleteFunc(slices.Clone(*items(&n.set)), func(o T) bool { return key != "" && keyOf(o) == key })
	blame := -1
	if v != nil {
		l = append(l, *v)
		blame = len(l) - 1
	}
	*items(&after) = l
	return refusal(before, after.Problems(), list, blame)
}

// checkHost checks h arriving in place of the host called old ("" for none).
func (t *txn) checkHost(old string, h *site.Host) error {
	if h != nil {
		// A live lease of another client holds an address (a reservation's lease,
		// left where its host was).
		o, _ := t.m.Host(old)
		for _, f := range []struct {
			field    string
			now, was netip.Addr
		}{{"ip", h.IP, o.IP}, {"ip6", h.IP6, o.IP6}} {
			ownLease := func(l Lease) bool { return !l.Declined && f.was == f.now && o.MAC == l.MAC }
			if l, ok := t.m.Lease(f.now); ok && f.now.IsValid() && !l.Ended(t.at) && (l.Declined || l.MAC != h.MAC) && !ownLease(l) {
				until := l.Expires.UTC().Format(time.RFC3339)
				if l.Released != 0 {
					return &Error{Kind: ErrConflict, Field: f.field, Msg: fmt.Sprintf("%s was released by %s and waits until every node has applied the release, or until %s", f.now, l.holder(), until)}
				}
				return &Error{Kind: ErrConflict, Field: f.field, Msg: fmt.Sprintf("%s is leased to %s until %s: release the lease first", f.now, l.holder(), until)}
			}
		}
	}
	n := t.neighbourhood()
	n.addHostNamed(old)
	if h != nil {
		n.aroundHost(*h)
		if h.PiSerial != "" { // a Raspberry Pi's serial is one host's: rare, so no index is kept
			for it := t.m.hosts.Iterator(); !it.Done(); {
				if _, o, _ := it.Next(); o.PiSerial == h.PiSerial {
					n.addHost(o)
				}
			}
		}
	}
	return check(n, "hosts", func(s *site.Set) *[]site.Host { return &s.Hosts }, func(h site.Host) string { return h.Name }, old, h)
}

// checkRecord checks r arriving in place of the record with ID old ("" for none).
func (t *txn) checkRecord(old string, r *site.Record) error {
	n := t.neighbourhood()
	if o, ok := t.m.Record(old); ok {
		n.addRecord(o)
	}
	if r != nil {
		n.addRecordsAt(r.Name)
	}
	return check(n, "records", func(s *site.Set) *[]site.Record { return &s.Records }, site.Record.ID, old, r)
}

// checkSubnet checks sn arriving in place of old (either may be nil). Its
// neighbourhood is every subnet, the hosts in either network, and the reverse records
// of either network; a lease left in no subnet refuses the change too.
func (t *txn) checkSubnet(old, sn *site.Subnet) error {
	n := t.neighbourhood()
	var nets []netip.Prefix
	for _, s := range []*site.Subnet{old, sn} {
		if s != nil && s.CIDR.IsValid() {
			nets = append(nets, s.CIDR)
		}
	}
	for _, p := range nets {
		t.m.HostsIn(p.Addr(), lastAddr(p), func(h site.Host) bool { n.addHost(h); return true })
	}
	for _, r := range t.m.Records() { // records are few; reverse ones fewer
		if a, ok := site.ReverseAddr(r.Name); ok && slices.ContainsFunc(nets, func(p netip.Prefix) bool { return p.Contains(a) }) {
			n.addRecord(r)
		}
	}
	key := ""
	if old != nil {
		key = old.Name
	}
	if err := check(n, "subnets", func(s *site.Set) *[]site.Subnet { return &s.Subnets }, func(s site.Subnet) string { return s.Name }, key, sn); err != nil {
		return err
	}
	if old == nil {
		return nil
	}
	after := &Model{shape: &Shape{Subnets: slices.DeleteFunc(slices.Clone(t.m.shape.Subnets), func(s site.Subnet) bool { return s.Name == old.Name })}}
	if sn != nil {
		after.shape.Subnets = append(after.shape.Subnets, *sn)
	}
	var err error
	t.m.leasesOf(*old, func(l Lease) bool {
		if _, ok := site.LeaseHome(after.shape.Subnets, l.IP, l.Length); !ok {
			err = &Error{Kind: ErrConflict, Field: "cidr", Msg: "the DHCP lease of " + l.Name() + " (" + l.holder() + ") would be in no subnet: release it first"}
			return false
		}
		return true
	})
	return err
}

// leasesOf calls fn with each lease of sn, its addresses' and its delegated
// prefixes', until fn returns false.
func (m *Model) leasesOf(sn site.Subnet, fn func(Lease) bool) {
	more := true
	m.LeasesIn(sn.CIDR.Addr(), lastAddr(sn.CIDR), func(l Lease) bool { more = fn(l); return more })
	if d := sn.Delegate; d != nil && more {
		m.LeasesIn(d.Prefix.Addr(), lastAddr(d.Prefix), fn)
	}
}

// lastAddr is the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// maxScan bounds the search for a free address in very large (IPv6) subnets.
const maxScan = 1 << 20

// lowestFree is the lowest address of sn that nothing holds: walking up from the
// network address, it looks each candidate up in the indexes.
func lowestFree(m *Model, sn site.Subnet) (netip.Addr, bool) {
	a := sn.CIDR.Addr()
	for range maxScan {
		if !sn.CIDR.Contains(a) {
			break
		}
		if _, held := m.hostByIP.Get(a); !held && site.AddressName(sn, a) == "" && !inRange(sn, a) && !(a.Is6() && a == sn.CIDR.Addr()) {
			if _, leased := get(m.leases.byIP, a); !leased {
				return a, true
			}
		}
		a = a.Next()
	}
	return netip.Addr{}, false
}

func inRange(sn site.Subnet, a netip.Addr) bool {
	for _, r := range sn.Ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// refusal returns the problems in after that were not in before as one Error. Its
// field is the first problem's, when that problem is about the object at list[index].
func refusal(before, after []site.Problem, list string, index int) error {
	known := map[string]bool{}
	for _, p := range before {
		known[p.Message] = true
	}
	var fresh []site.Problem
	for _, p := range after {
		if !known[p.Message] {
			fresh = append(fresh, p)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	e := &Error{Kind: ErrInvalid}
	if fresh[0].Conflict {
		e.Kind = ErrConflict
	}
	if fresh[0].List == list && fresh[0].Index == index {
		e.Field = fresh[0].Field
	}
	msgs := make([]string, len(fresh))
	for i, p := range fresh {
		msgs[i] = p.Message
	}
	e.Msg = strings.Join(msgs, "; ")
	return e
}
