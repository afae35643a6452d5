package dns

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/pkg/ipam"
)

// snapshot is everything the plugin answers from. It is built whole from one IPAM
// view and never changed after: a query reads it without a lock, and a change of the
// store builds and swaps in a new one.
type snapshot struct {
	serial uint32
	zones  []string          // ours, lower-case FQDNs, longest first
	nodes  map[string]node   // every owner name in our zones, and the empty non-terminals
	negSOA map[string]dns.RR // per zone: its SOA with the TTL of a negative answer (RFC 2308)
}

// node holds the RRsets of one owner name, by type; nil for an empty non-terminal.
type node map[uint16][]dns.RR

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
}

// build makes a snapshot of v. Records that cannot be turned into RRs are logged and
// left out; the hosts of the site always win a name over a lease.
func build(v ipam.View, st settings, serial uint32, log *slog.Logger) *snapshot {
	s := &snapshot{serial: serial, zones: siteZones(v.Set), nodes: map[string]node{}, negSOA: map[string]dns.RR{}}
	slices.SortStableFunc(s.zones, func(a, b string) int { return len(b) - len(a) })
	domain := string(v.Domain)
	hdr := func(name string, rrtype uint16, ttl uint32) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
	}

	hostNames := map[string]bool{}
	for _, h := range v.Hosts {
		fqdn := h.Name + "." + domain
		hostNames[fqdn] = true
		s.addAddress(fqdn, h.IP, st.ttl)
	}
	for _, l := range v.Leases {
		if l.Hostname == "" {
			continue
		}
		fqdn := strings.ToLower(l.Hostname) + "." + domain
		if hostNames[fqdn] {
			// DHCP logged the clash when it made the lease; this repeats at every rebuild.
			log.Debug("lease hostname clashes with a host: the host keeps the name", "hostname", l.Hostname, "lease", l.IP)
			continue
		}
		s.addAddress(fqdn, l.IP, st.ttl)
	}

	ns := "ns." + domain
	for _, h := range v.Hosts {
		if h.IP == st.advertise {
			ns = h.Name + "." + domain // the host infrad runs on names the zone's server
		}
	}
	if st.advertise.IsValid() && !hostNames[ns] {
		s.addAddress(ns, st.advertise, st.ttl)
	}
	for _, z := range s.zones {
		soa := &dns.SOA{Hdr: hdr(z, dns.TypeSOA, st.ttl), Ns: ns, Mbox: "hostmaster." + domain,
			Serial: serial, Refresh: soaRefresh, Retry: soaRetry, Expire: soaExpire, Minttl: negTTL}
		s.add(soa)
		neg := dns.Copy(soa)
		neg.Header().Ttl = min(st.ttl, negTTL)
		s.negSOA[z] = neg
		s.add(&dns.NS{Hdr: hdr(z, dns.TypeNS, st.ttl), Ns: ns})
	}

	for _, r := range v.Records {
		ttl := r.TTL
		if ttl == 0 {
			ttl = st.ttl
		}
		rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", r.Name, ttl, r.Type, r.Value))
		if err != nil || rr == nil {
			log.Error("record left out of DNS", "record", r.Name, "type", r.Type, "err", err)
			continue
		}
		s.add(rr)
	}
	s.addEmptyNonTerminals()
	return s
}

// addAddress adds the A or AAAA record of name and, when the address is in one of our
// reverse zones and its PTR is not taken, the PTR back.
func (s *snapshot) addAddress(name string, a netip.Addr, ttl uint32) {
	if a.Is4() {
		s.add(&dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.IP(a.AsSlice())})
	} else {
		s.add(&dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: net.IP(a.AsSlice())})
	}
	ptr := mustReverse(a)
	if s.zoneOf(ptr) == "" || len(s.nodes[ptr][dns.TypePTR]) > 0 {
		return
	}
	s.add(&dns.PTR{Hdr: dns.RR_Header{Name: ptr, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: ttl}, Ptr: name})
}

func (s *snapshot) add(rr dns.RR) {
	h := rr.Header()
	h.Name = strings.ToLower(h.Name)
	n := s.nodes[h.Name]
	if n == nil {
		n = node{}
		s.nodes[h.Name] = n
	}
	n[h.Rrtype] = append(n[h.Rrtype], rr)
}

// addEmptyNonTerminals makes every ancestor of an owner name, up to its zone, exist:
// a name with nothing below it answers NODATA, and no wildcard stands in for it.
func (s *snapshot) addEmptyNonTerminals() {
	for name := range s.nodes {
		zone := s.zoneOf(name)
		for p := parent(name); p != "" && p != zone && dns.IsSubDomain(zone, p); p = parent(p) {
			if _, ok := s.nodes[p]; !ok {
				s.nodes[p] = nil
			}
		}
	}
}

// isZone reports whether z is one of our zones.
func (s *snapshot) isZone(z string) bool { return slices.Contains(s.zones, z) }

// zoneOf returns the longest of our zones that holds name, or "".
func (s *snapshot) zoneOf(name string) string {
	for _, z := range s.zones {
		if dns.IsSubDomain(z, name) {
			return z
		}
	}
	return ""
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
