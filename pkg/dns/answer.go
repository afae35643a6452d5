package dns

import (
	"github.com/miekg/dns"
)

// maxChase bounds how many in-zone CNAMEs one answer follows.
const maxChase = 8

// answer fills m, a reply to a query for name (lower case) and qtype in zone, from the
// snapshot: the RRset, a CNAME chain followed through our zones, a wildcard expanded
// (RFC 4592), or NXDOMAIN or NODATA with the zone's SOA in the authority section.
func (s *snapshot) answer(m *dns.Msg, name string, qtype uint16, zone string) {
	m.Authoritative = true
	for range maxChase {
		n, exists := s.nodes[name]
		if !exists {
			n, exists = s.wildcard(name, zone)
		}
		if !exists {
			m.Rcode = dns.RcodeNameError
			s.negative(m, zone)
			return
		}
		if qtype == dns.TypeANY {
			for _, rrs := range n {
				m.Answer = append(m.Answer, rrs...)
			}
			return
		}
		if rrs := n[qtype]; len(rrs) > 0 {
			m.Answer = append(m.Answer, rrs...)
			return
		}
		cname := n[dns.TypeCNAME]
		if len(cname) == 0 {
			s.negative(m, zone) // NODATA
			return
		}
		m.Answer = append(m.Answer, cname...)
		name = cname[0].(*dns.CNAME).Target
		if zone = s.zoneOf(name); zone == "" {
			return // the target is not ours: the client resolves it
		}
	}
}

// wildcard returns the RRsets that a wildcard synthesises for name, which does not
// exist: those of "*.<closest encloser>", owned by name (RFC 4592 §3.3.1).
func (s *snapshot) wildcard(name, zone string) (node, bool) {
	ce := parent(name)
	for ; ce != "" && dns.IsSubDomain(zone, ce); ce = parent(ce) {
		if _, ok := s.nodes[ce]; ok {
			break
		}
	}
	if ce == "" || !dns.IsSubDomain(zone, ce) {
		return nil, false
	}
	src, ok := s.nodes["*."+ce]
	if !ok || src == nil {
		return nil, false
	}
	out := make(node, len(src))
	for t, rrs := range src {
		copied := make([]dns.RR, len(rrs))
		for i, rr := range rrs {
			copied[i] = dns.Copy(rr)
			copied[i].Header().Name = name
		}
		out[t] = copied
	}
	return out, true
}

// negative puts the zone's SOA in the authority section, as RFC 2308 asks of a
// negative answer.
func (s *snapshot) negative(m *dns.Msg, zone string) {
	if soa := s.negSOA[zone]; soa != nil {
		m.Ns = append(m.Ns, soa)
	}
}
