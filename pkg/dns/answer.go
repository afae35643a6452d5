package dns

import (
	"maps"
	"slices"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// maxChase bounds how many in-zone CNAMEs one answer follows.
const maxChase = 8

// answer fills m, a reply to a query for name (lower case) and qtype in zone: the
// RRset, a CNAME chain followed through our zones, a wildcard expanded (RFC 4592), or
// NXDOMAIN or NODATA with the zone's SOA in the authority section.
func (v *view) answer(m *dns.Msg, name string, qtype uint16, zone string) {
	m.Authoritative = true
	if rr := v.fast(name, qtype); rr != nil {
		m.Answer = append(m.Answer, rr)
		return
	}
	for range maxChase {
		n, exists := v.node(name)
		if !exists {
			n, exists = v.wildcard(name, zone)
		}
		if !exists {
			m.Rcode = dns.RcodeNameError
			v.negative(m, zone)
			return
		}
		if qtype == dns.TypeANY { // every RRset, by type: the same answer each time
			for _, t := range slices.Sorted(maps.Keys(n)) {
				m.Answer = append(m.Answer, n[t]...)
			}
			return
		}
		if rrs := n[qtype]; len(rrs) > 0 {
			m.Answer = append(m.Answer, rrs...)
			v.additional(m, rrs)
			return
		}
		cname := n[dns.TypeCNAME]
		if len(cname) == 0 {
			v.negative(m, zone) // NODATA
			return
		}
		m.Answer = append(m.Answer, cname...)
		name = cname[0].(*dns.CNAME).Target
		if zone = v.zoneOf(name); zone == "" {
			return // the target is not ours: the client resolves it
		}
	}
}

// additional adds to m the addresses infrad knows of the names an NS, MX or SRV answer
// points at (RFC 1034 §4.3.2, RFC 2782): the glue a resolver would ask for next.
func (v *view) additional(m *dns.Msg, rrs []dns.RR) {
	seen := map[string]bool{}
	for _, rr := range rrs {
		var target string
		switch rr := rr.(type) {
		case *dns.NS:
			target = rr.Ns
		case *dns.MX:
			target = rr.Mx
		case *dns.SRV:
			target = rr.Target
		default:
			return
		}
		target = dns.CanonicalName(target)
		if seen[target] || v.zoneOf(target) == "" {
			continue
		}
		seen[target] = true
		if n, ok := v.node(target); ok {
			m.Extra = append(append(m.Extra, n[dns.TypeA]...), n[dns.TypeAAAA]...)
		}
	}
}

// fast answers the commonest queries without gathering the name's RRsets: a host's or
// a named lease's address, and an address's PTR, where no record stands beside them.
// It returns nil for every other case, which answer then takes the long way.
func (v *view) fast(name string, qtype uint16) dns.RR {
	owner := site.Name(name)
	if v.m.HasRecords(owner) || v.isZone(name) {
		return nil
	}
	switch qtype {
	case dns.TypeA, dns.TypeAAAA:
		a, _ := v.m.AddressOf(owner, qtype == dns.TypeAAAA)
		if !a.IsValid() {
			return nil
		}
		return v.m.AddressRR(name, a)
	case dns.TypePTR:
		a, ok := site.ReverseAddr(owner)
		if !ok {
			return nil
		}
		if target := v.m.PTR(a); target != "" {
			return v.m.PTRRR(name, target)
		}
	}
	return nil
}

// wildcard returns the RRsets that a wildcard synthesises for name, which does not
// exist: those of "*.<closest encloser>", owned by name (RFC 4592 §3.3.1).
func (v *view) wildcard(name, zone string) (ipam.RRsets, bool) {
	ce := parent(name)
	for ; ce != "" && ce != zone && dns.IsSubDomain(zone, ce); ce = parent(ce) {
		if v.exists(ce) {
			break
		}
	}
	if ce == "" || !dns.IsSubDomain(zone, ce) {
		return nil, false
	}
	src, ok := v.node("*." + ce)
	if !ok || len(src) == 0 {
		return nil, false
	}
	for _, rrs := range src {
		for _, rr := range rrs {
			rr.Header().Name = name // node made these RRs for this query alone
		}
	}
	return src, true
}

// negative puts the zone's SOA, with the TTL of a negative answer, in the authority
// section, as RFC 2308 asks.
func (v *view) negative(m *dns.Msg, zone string) {
	m.Ns = append(m.Ns, v.soa(zone, min(v.m.TTL(), negTTL)))
}
