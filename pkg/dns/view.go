package dns

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/pkg/ipam"
)

// view is what one query answers from: the published IPAM model (immutable), the
// zones it makes, and the site file's settings. A query reads the model through its
// indexes and builds the RRs it needs; nothing is rebuilt when the site changes, so a
// write is answered as soon as the write path publishes it, which is before the
// write is acknowledged.
type view struct {
	m     *ipam.Model
	zones *zoneSet
	settings
	dnssec *signer // nil: the zones are not signed
}

// SOA timers. The negative TTL (the SOA minimum) is short, so that a name created
// right after a client asked for it is found within a minute.
const (
	soaRefresh = 300
	soaRetry   = 60
	soaExpire  = 1209600 // two weeks
	negTTL     = 60
)

// settings are what the site file says about answers.
type settings struct {
	ttl       uint32     // for records without a TTL of their own
	advertise netip.Addr // the NS glue address; zero: none known
	// servers are the addresses of a cluster's serving nodes, in the site file's
	// order: each one that is a host's is a name server of the zones.
	servers []netip.Addr
}

// zoneSet is the zones of one shape of the site, longest first.
type zoneSet struct {
	shape *ipam.Shape
	list  []string
}

// zoneCache keeps the zones of the last shape seen: they change only with the
// subnets or the zones, so queries share them.
type zoneCache struct{ last atomic.Pointer[zoneSet] }

func (c *zoneCache) of(m *ipam.Model) *zoneSet {
	if z := c.last.Load(); z != nil && z.shape == m.Shape() {
		return z
	}
	z := zonesOf(m)
	c.last.Store(z)
	return z
}

// zonesOf makes the zones of m's shape.
func zonesOf(m *ipam.Model) *zoneSet {
	sh := m.Shape()
	set := ipam.Set{Domain: sh.Domain, Zones: sh.Zones, Subnets: sh.Subnets}
	z := &zoneSet{shape: sh, list: siteZones(set)}
	slices.SortStableFunc(z.list, func(a, b string) int { return len(b) - len(a) })
	return z
}

// isZone reports whether z is one of our zones.
func (v *view) isZone(z string) bool { return slices.Contains(v.zones.list, z) }

// zoneOf returns the longest of our zones that holds name, or "".
func (v *view) zoneOf(name string) string {
	for _, z := range v.zones.list {
		if inZone(z, name) {
			return z
		}
	}
	return ""
}

// inZone is dns.IsSubDomain(zone, name) for fully qualified names, without splitting
// them into labels (which allocates, and was two fifths of a signed answer's cost):
// name is zone, or ends in "." + zone, in any case. A name with escapes takes the
// long way.
func inZone(zone, name string) bool {
	if strings.IndexByte(name, '\\') >= 0 {
		return dns.IsSubDomain(zone, name)
	}
	if zone == "." {
		return true
	}
	n := len(name) - len(zone)
	return n >= 0 && strings.EqualFold(name[n:], zone) && (n == 0 || name[n-1] == '.')
}

// node holds the RRsets of one owner name, by type.
type node map[uint16][]dns.RR

func (n node) add(rr dns.RR) { t := rr.Header().Rrtype; n[t] = append(n[t], rr) }

// node returns the RRsets at name (lower case), and whether the name exists: it has
// RRsets, or names below it do (an empty non-terminal).
func (v *view) node(name string) (node, bool) {
	n := node{}
	owner := ipam.Name(name)
	if v.isZone(name) {
		n.add(v.soa(name, v.ttl))
		for _, ns := range v.nsNames() {
			n.add(&dns.NS{Hdr: v.hdr(name, dns.TypeNS, v.ttl), Ns: ns})
		}
		if v.dnssec != nil {
			if ks := v.dnssec.keys.Load(); ks != nil {
				for _, k := range ks.dnskeys(name, v.ttl, v.dnssec.now()) {
					n.add(k)
				}
			}
		}
	}
	if host, ok := v.m.HostnameOf(owner); ok {
		if h, ok := v.m.Host(host); ok {
			n.add(v.address(name, h.IP))
		} else if l, ok := v.m.LeaseNamed(host); ok {
			n.add(v.address(name, l.IP))
		} else if name == v.glueName() {
			n.add(v.address(name, v.advertise))
		}
	}
	if a, ok := ipam.ReverseAddr(owner); ok {
		if target := v.ptr(a); target != "" {
			n.add(&dns.PTR{Hdr: v.hdr(name, dns.TypePTR, v.ttl), Ptr: target})
		}
	}
	for _, rr := range v.m.RecordsAt(owner) {
		rr = dns.Copy(rr)
		if rr.Header().Ttl == ipam.DefaultTTL {
			rr.Header().Ttl = v.ttl
		}
		n.add(rr)
	}
	n.oneTTL()
	return n, len(n) > 0 || v.m.NameExists(owner)
}

// oneTTL gives every RR of an RRset the set's lowest TTL: an RRset has one TTL (RFC
// 2181 §5.2), and records added at different TTLs (the site file, the API, updates)
// are served, and transferred, as one.
func (n node) oneTTL() {
	for _, set := range n {
		if len(set) < 2 {
			continue
		}
		low := set[0].Header().Ttl
		for _, rr := range set[1:] {
			low = min(low, rr.Header().Ttl)
		}
		for _, rr := range set {
			rr.Header().Ttl = low
		}
	}
}

// exists reports whether name exists, as node does, without making its RRs: the
// names index counts every host's, lease's and record's owner name and those above
// them; the apexes and the NS glue are the rest.
func (v *view) exists(name string) bool {
	return v.m.NameExists(ipam.Name(name)) || v.isZone(name) || name == v.glueName() ||
		(v.glueName() != "" && name == string(ipam.ReverseName(v.advertise)))
}

// ptr is the name the address a points back to: its host's, else its named lease's,
// else the NS glue's; "" for none.
func (v *view) ptr(a netip.Addr) string {
	if h, ok := v.m.HostAt(a); ok {
		return string(v.m.FQDN(h.Name))
	}
	if l, ok := v.m.Lease(a); ok && l.Hostname != "" {
		return string(v.m.FQDN(l.Hostname)) // the write path gives no lease a host's name
	}
	if a == v.advertise && v.glueName() != "" {
		return v.glueName()
	}
	return ""
}

// nsName is the name of the zones' server: the host at the advertised address, else
// ns.<domain>.
func (v *view) nsName() string {
	if h, ok := v.m.HostAt(v.advertise); ok && v.advertise.IsValid() {
		return string(v.m.FQDN(h.Name))
	}
	return "ns." + string(v.m.Domain())
}

// nsNames are the zones' name servers: a cluster's serving nodes that are hosts of
// the site, else the one of nsName.
func (v *view) nsNames() []string {
	var out []string
	for _, a := range v.servers {
		if h, ok := v.m.HostAt(a); ok {
			out = append(out, string(v.m.FQDN(h.Name)))
		}
	}
	if len(out) == 0 {
		return []string{v.nsName()}
	}
	return out
}

// glueName is ns.<domain> when infrad gives it the advertised address itself: no host
// has that address or that name. Otherwise "".
func (v *view) glueName() string {
	if !v.advertise.IsValid() {
		return ""
	}
	if _, ok := v.m.HostAt(v.advertise); ok {
		return ""
	}
	if _, ok := v.m.Host("ns"); ok {
		return ""
	}
	return "ns." + string(v.m.Domain())
}

func (v *view) hdr(name string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

func (v *view) address(name string, a netip.Addr) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: v.hdr(name, dns.TypeA, v.ttl), A: net.IP(a.AsSlice())}
	}
	return &dns.AAAA{Hdr: v.hdr(name, dns.TypeAAAA, v.ttl), AAAA: net.IP(a.AsSlice())}
}

func (v *view) soa(zone string, ttl uint32) *dns.SOA {
	return &dns.SOA{Hdr: v.hdr(zone, dns.TypeSOA, ttl), Ns: v.nsName(), Mbox: "hostmaster." + string(v.m.Domain()),
		Serial: v.m.Serial(), Refresh: soaRefresh, Retry: soaRetry, Expire: soaExpire, Minttl: negTTL}
}

// owners lists every owner name of zone, each once.
func (v *view) owners(zone string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(n ipam.Name) {
		if s := string(n); !seen[s] && v.zoneOf(s) == zone {
			seen[s] = true
			out = append(out, s)
		}
	}
	add(ipam.Name(zone))
	for _, h := range v.m.Hosts() {
		add(v.m.FQDN(h.Name))
		add(ipam.ReverseName(h.IP))
	}
	for _, l := range v.m.Leases() {
		if l.Hostname != "" {
			add(v.m.FQDN(l.Hostname))
			add(ipam.ReverseName(l.IP))
		}
	}
	for _, r := range v.m.Records() {
		add(r.Name)
	}
	if g := v.glueName(); g != "" {
		add(ipam.Name(g))
		add(ipam.ReverseName(v.advertise))
	}
	return out
}

// eachRRs calls fn with what a transfer of zone holds between its SOAs: the RRs of
// each owner name (the apex's SOA aside), then the delegations of the zones below it.
func (v *view) eachRRs(zone string, fn func([]dns.RR)) {
	for _, name := range v.owners(zone) {
		n, _ := v.node(name)
		var rrs []dns.RR
		for t, set := range n {
			if !(name == zone && t == dns.TypeSOA) {
				rrs = append(rrs, set...)
			}
		}
		if len(rrs) > 0 {
			fn(rrs)
		}
	}
	if d := v.delegations(zone); len(d) > 0 {
		fn(d)
	}
}

// contents are the RRs eachRRs gives, by their text: what an IXFR compares.
func (v *view) contents(zone string) map[string]dns.RR {
	out := map[string]dns.RR{}
	v.eachRRs(zone, func(rrs []dns.RR) {
		for _, rr := range rrs {
			out[rr.String()] = rr
		}
	})
	return out
}

// delegations are what zone's transfer holds of the zones infrad serves below it (the
// site's domain below an extra zone, say k8s.example.com below example.com): an NS
// record delegating each to the zones' name server, and that server's address as glue
// when its name lies in zone. Queries to infrad never need them (it answers from the
// child zone), but a secondary of the parent alone does, and BIND and Knot refuse a
// zone whose in-zone NS target has no address.
func (v *view) delegations(zone string) []dns.RR {
	var out []dns.RR
	names := v.nsNames()
	for _, child := range v.zones.list {
		if child == zone || !dns.IsSubDomain(zone, child) || v.zoneOf(parent(child)) != zone {
			continue
		}
		for _, ns := range names {
			out = append(out, &dns.NS{Hdr: v.hdr(child, dns.TypeNS, v.ttl), Ns: ns})
		}
	}
	if len(out) == 0 {
		return out
	}
	for _, ns := range names {
		if dns.IsSubDomain(zone, ns) {
			if n, _ := v.node(ns); n != nil {
				out = append(append(out, n[dns.TypeA]...), n[dns.TypeAAAA]...)
			}
		}
	}
	return out
}

// parent strips the first label: "a.b.c." is "b.c.", "c." is ".", "." is "".
func parent(name string) string {
	if name == "." {
		return ""
	}
	i := strings.IndexByte(name, '.')
	if i == len(name)-1 {
		return "."
	}
	return name[i+1:]
}
