package ipam

import (
	"hash/maphash"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/benbjohnson/immutable"
	"github.com/infrad/infrad/pkg/site"
	"github.com/miekg/dns"
)

// Model is the site as one commit left it: subnets, hosts, records and leases, with
// indexes by name, address and MAC. It is never changed once published: a reader
// holds one without a lock and sees one consistent revision. The write path makes the
// next model from the last with persistent maps and copy-on-write B-trees, so a
// change costs in proportion to itself (a few paths copied), not to the site.
type Model struct {
	serial uint32 // the zones' SOA serial: rises with every change DNS answers from
	// signedAt is the time the zones' signatures are made as of (Resign).
	signedAt time.Time

	shape *Shape // domain, zones and subnets: small, and replaced whole when they change

	hosts     *immutable.SortedMap[string, site.Host]  // by name
	hostByIP  *immutable.SortedMap[netip.Addr, string] // address → host name
	hostByMAC *immutable.Map[site.MAC, string]         // MAC → host name
	// hostByDUID is DUID → host name: the hosts reserved for a DHCPv6 client by its DUID.
	hostByDUID *immutable.Map[string, string]

	records   *immutable.SortedMap[string, site.Record] // by ID
	recordsAt *immutable.Map[site.Name, []string]       // owner name → record IDs
	rrs       *immutable.Map[string, dns.RR]            // record ID → its parsed RR (TTL as stored, DefaultTTL for none)

	leases   leaseIndexes // by address, MAC and hostname
	released int          // how many leases are Released: their addresses wait for SettleEnds

	// names counts, for every DNS name, the owner names at or below it that hosts,
	// leases and records make: a name with a count exists in DNS (RFC 4592 empty
	// non-terminals included).
	names *immutable.Map[site.Name, int]

	tokens      *immutable.SortedMap[string, Token] // the named API tokens, by name
	tokenByHash *immutable.Map[string, string]      // SHA-256 (hex) → token name
}

// Shape is the part of the site that changes rarely: the zones and the subnets.
type Shape struct {
	Domain  site.Name     // the forward zone hosts live in
	Zones   []site.Name   // further authoritative zones
	Source  string        // the site file, named when the API may not change its objects
	Subnets []site.Subnet // by name
	// Digest is FileDigest of the last site file Reconcile applied: one it finds
	// again needs no reconcile.
	Digest string
	// Changes bounds the change log (the site file's change_log), so that every box
	// trims it alike.
	Changes site.ChangeLimits
	// DNS is what the site file says of the zones' content.
	DNS site.ZoneSettings
	// DHCPServers is how many boxes answer DHCP (SetDHCPServers; 0: one box): more
	// than one holds the addresses of leases ended early (Lease.Released).
	DHCPServers int
	// Grants says every lease granted since keeps the index of its grant
	// (Lease.Granted), and a late CommitLease does not move its client (TrackGrants).
	Grants bool
	// Boot names the site file's boot profiles, which hosts and subnets may name.
	Boot []string

	zones []string // the zones of Domain, Zones and Subnets, longest first (index)
}

// index makes what a shape derives from its fields; each new shape is indexed once.
func (sh *Shape) index() *Shape {
	sh.zones = site.Zones(sh.Domain, sh.Zones, sh.Subnets)
	return sh
}

func emptyModel() *Model {
	return &Model{
		shape:      &Shape{},
		hosts:      immutable.NewSortedMap[string, site.Host](stringComparer{}),
		hostByIP:   immutable.NewSortedMap[netip.Addr, string](addrComparer{}),
		hostByMAC:  immutable.NewMap[site.MAC, string](macHasher{}),
		hostByDUID: immutable.NewMap[string, string](stringHasher{}),
		records:    immutable.NewSortedMap[string, site.Record](stringComparer{}),
		recordsAt:  immutable.NewMap[site.Name, []string](nameHasher{}),
		rrs:        immutable.NewMap[string, dns.RR](stringHasher{}),
		leases:     newLeaseIndexes(),
		names:      immutable.NewMap[site.Name, int](nameHasher{}),

		tokens:      immutable.NewSortedMap[string, Token](stringComparer{}),
		tokenByHash: immutable.NewMap[string, string](stringHasher{}),
	}
}

// Serial is the SOA serial of the site's zones.
func (m *Model) Serial() uint32 { return m.serial }

// Shape is the model's domain, zones and subnets. Callers must not change it; its
// pointer changes exactly when they do, so a reader may cache what it derives.
func (m *Model) Shape() *Shape { return m.shape }

// Domain is the site's forward zone.
func (m *Model) Domain() site.Name { return m.shape.Domain }

// Subnets returns every subnet, by name.
func (m *Model) Subnets() []site.Subnet { return m.shape.Subnets }

// Subnet returns the named subnet.
func (m *Model) Subnet(name string) (site.Subnet, bool) {
	i, ok := slices.BinarySearchFunc(m.shape.Subnets, name, func(s site.Subnet, n string) int { return strings.Compare(s.Name, n) })
	if !ok {
		return site.Subnet{}, false
	}
	return m.shape.Subnets[i], true
}

// SubnetOf returns the first subnet holding a.
func (m *Model) SubnetOf(a netip.Addr) (site.Subnet, bool) {
	for _, sn := range m.shape.Subnets {
		if sn.CIDR.Contains(a) {
			return sn, true
		}
	}
	return site.Subnet{}, false
}

// Host returns the named host.
func (m *Model) Host(name string) (site.Host, bool) { return m.hosts.Get(name) }

// HostAt returns the host with address a.
func (m *Model) HostAt(a netip.Addr) (site.Host, bool) {
	name, ok := m.hostByIP.Get(a)
	if !ok {
		return site.Host{}, false
	}
	return m.hosts.Get(name)
}

// HostWithMAC returns the host with mac: the client's reservation.
func (m *Model) HostWithMAC(mac site.MAC) (site.Host, bool) {
	name, ok := m.hostByMAC.Get(mac)
	if !ok {
		return site.Host{}, false
	}
	return m.hosts.Get(name)
}

// HostWithDUID returns the host reserved for the DHCPv6 client with duid (in hex).
func (m *Model) HostWithDUID(duid string) (site.Host, bool) {
	name, ok := m.hostByDUID.Get(duid)
	if !ok {
		return site.Host{}, false
	}
	return m.hosts.Get(name)
}

// Hosts returns every host, by name.
func (m *Model) Hosts() []site.Host { return values(m.hosts) }

// Record returns the record with id.
func (m *Model) Record(id string) (site.Record, bool) { return m.records.Get(id) }

// Records returns every record, by ID.
func (m *Model) Records() []site.Record { return values(m.records) }

// HasRecords reports whether records stand at name.
func (m *Model) HasRecords(name site.Name) bool {
	_, ok := m.recordsAt.Get(name)
	return ok
}

// RecordsAt returns the records at name, with their parsed RRs.
func (m *Model) RecordsAt(name site.Name) []dns.RR {
	ids, _ := m.recordsAt.Get(name)
	out := make([]dns.RR, 0, len(ids))
	for _, id := range ids {
		if rr, ok := m.rrs.Get(id); ok {
			out = append(out, rr)
		}
	}
	return out
}

// Lease returns the lease of address a.
func (m *Model) Lease(a netip.Addr) (Lease, bool) { return deref(get(m.leases.byIP, a)) }

// LeaseOf returns the active DHCPv4 lease of the client mac.
func (m *Model) LeaseOf(mac site.MAC) (Lease, bool) { return deref(get(m.leases.byMAC, mac)) }

// LeaseOfClient returns the active DHCPv6 lease of client (Lease.Client).
func (m *Model) LeaseOfClient(client string) (Lease, bool) {
	return deref(get(m.leases.byClient, client))
}

// LeaseNamed returns the lease of the family asked (v6: DHCPv6, else DHCPv4) whose
// hostname is name: a name may hold one lease of each.
func (m *Model) LeaseNamed(hostname string, v6 bool) (Lease, bool) {
	if v6 {
		return deref(get(m.leases.byName6, hostname))
	}
	return deref(get(m.leases.byName, hostname))
}

func deref(l *Lease, ok bool) (Lease, bool) {
	if !ok {
		return Lease{}, false
	}
	return *l, true
}

// Released is how many addresses of leases ended early wait for every box to apply
// their end (Lease.Released, SettleEnds).
func (m *Model) Released() int { return m.released }

// Leases returns every lease, by address.
func (m *Model) Leases() []Lease {
	out := make([]Lease, 0, m.leases.byIP.Len())
	m.leases.byIP.Ascend(func(e keyed[netip.Addr]) bool {
		out = append(out, *e.lease)
		return true
	})
	return out
}

// LeasesIn calls fn with each lease from address from (included) to to (included),
// in order, until fn returns false.
func (m *Model) LeasesIn(from, to netip.Addr, fn func(Lease) bool) {
	m.leases.byIP.AscendGreaterOrEqual(keyed[netip.Addr]{key: from}, func(e keyed[netip.Addr]) bool {
		return !to.Less(e.key) && fn(*e.lease)
	})
}

// HostsIn calls fn with each host whose address is from from to to, in address order,
// until fn returns false.
func (m *Model) HostsIn(from, to netip.Addr, fn func(site.Host) bool) {
	it := m.hostByIP.Iterator()
	it.Seek(from)
	for !it.Done() {
		a, name, _ := it.Next()
		if to.Less(a) {
			return
		}
		if h, ok := m.hosts.Get(name); ok && !fn(h) {
			return
		}
	}
}

// NameExists reports whether DNS has name: records, a host's or a lease's name or
// PTR, or a name below one of those (an empty non-terminal).
func (m *Model) NameExists(name site.Name) bool {
	n, _ := m.names.Get(name)
	return n > 0
}

// FQDN is the fully qualified name of hostname in the site's domain.
func (m *Model) FQDN(hostname string) site.Name { return site.HostFQDN(hostname, m.shape.Domain) }

// HostnameOf returns the name a host or a lease at owner name would have: the name of
// the host whose absolute name it is, or its label when it is one label under the
// domain ("cp01" for cp01.<domain>); false otherwise.
func (m *Model) HostnameOf(name site.Name) (string, bool) {
	if host, ok := strings.CutSuffix(string(name), "."+string(m.shape.Domain)); ok && host != "" && !strings.Contains(host, ".") {
		return host, true // (no absolute host name is one label under the domain)
	}
	if _, ok := m.hosts.Get(string(name)); ok {
		return string(name), true
	}
	return "", false
}

// Set is the model's objects as a Set, for checking every rule at once.
func (m *Model) Set() site.Set {
	return site.Set{Domain: m.shape.Domain, Zones: m.shape.Zones, Subnets: slices.Clone(m.shape.Subnets), Hosts: m.Hosts(), Records: m.Records(), DNS: m.shape.DNS, Boot: m.shape.Boot}
}

func values[K, V any](sm *immutable.SortedMap[K, V]) []V {
	out := make([]V, 0, sm.Len())
	for it := sm.Iterator(); !it.Done(); {
		_, v, _ := it.Next()
		out = append(out, v)
	}
	return out
}

// Ended reports whether l has ended at now.
func (l Lease) Ended(now time.Time) bool { return !now.Before(l.Expires) }

// Comparers and hashers for the persistent maps.

var seed = maphash.MakeSeed()

type stringComparer struct{}

func (stringComparer) Compare(a, b string) int { return strings.Compare(a, b) }

type addrComparer struct{}

func (addrComparer) Compare(a, b netip.Addr) int { return a.Compare(b) }

type stringHasher struct{}

func (stringHasher) Hash(k string) uint32   { return uint32(maphash.String(seed, k)) }
func (stringHasher) Equal(a, b string) bool { return a == b }

type nameHasher struct{}

func (nameHasher) Hash(k site.Name) uint32   { return uint32(maphash.String(seed, string(k))) }
func (nameHasher) Equal(a, b site.Name) bool { return a == b }

type macHasher struct{}

func (macHasher) Hash(k site.MAC) uint32   { return uint32(maphash.Comparable(seed, k)) }
func (macHasher) Equal(a, b site.MAC) bool { return a == b }
