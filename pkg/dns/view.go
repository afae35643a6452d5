package dns

import (
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/pkg/ipam"
)

// view is what one query answers from: the published IPAM model (immutable), which
// defines what every zone serves (ipam.Model.Node), and the signer when the zones are
// signed. A query reads the model through its indexes and builds the RRs it needs;
// nothing is rebuilt when the site changes, so a write is answered as soon as the
// write path publishes it, which is before the write is acknowledged.
type view struct {
	m      *ipam.Model
	dnssec *signer // nil: the zones are not signed
}

const negTTL = ipam.NegativeTTL

// isZone reports whether z is one of our zones.
func (v *view) isZone(z string) bool { return v.m.IsZone(z) }

// zoneOf returns the longest of our zones that holds name, or "".
func (v *view) zoneOf(name string) string { return v.m.ZoneOf(name) }

// node returns the RRsets at name (lower case): the model's, and at a signed zone's
// apex the DNSKEY set, and the CDS and CDNSKEY sets while they ask the parent for a
// change.
func (v *view) node(name string) (ipam.RRsets, bool) {
	n, ok := v.m.Node(name)
	if v.dnssec != nil && v.isZone(name) {
		if ks := v.dnssec.keys.Load(); ks != nil {
			at := v.signedAt()
			if keys := ks.dnskeys(name, v.m.TTL(), at); len(keys) > 0 {
				n[dns.TypeDNSKEY] = keys
			}
			for _, rr := range ks.cds(name, v.m.TTL(), at) {
				n[rr.Header().Rrtype] = append(n[rr.Header().Rrtype], rr)
			}
		}
	}
	return n, ok
}

// signedAt is the time the zones are signed as of: the model's (ipam.Model.SignedAt),
// or the clock's until DNS has set one.
func (v *view) signedAt() time.Time {
	if at := v.m.SignedAt(); !at.IsZero() {
		return at
	}
	return v.dnssec.now()
}

// exists reports whether name exists, as node does, without making its RRs.
func (v *view) exists(name string) bool { return v.m.Exists(name) }

func (v *view) hdr(name string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

func (v *view) soa(zone string, ttl uint32) *dns.SOA { return v.m.SOA(zone, ttl) }

// eachRRs calls fn with what a transfer of zone holds between its SOAs: the RRs of
// each owner name (the apex's SOA aside), then the delegations of the zones below it.
func (v *view) eachRRs(zone string, fn func([]dns.RR)) {
	for _, name := range v.m.Owners(zone) {
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
	names := v.m.NameServerNames()
	for _, child := range v.m.Zones() {
		if child == zone || !dns.IsSubDomain(zone, child) || v.zoneOf(parent(child)) != zone {
			continue
		}
		for _, ns := range names {
			out = append(out, &dns.NS{Hdr: v.hdr(child, dns.TypeNS, v.m.TTL()), Ns: ns})
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
