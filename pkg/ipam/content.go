package ipam

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/infrad/infrad/pkg/site"
	"github.com/miekg/dns"
)

// What a zone serves is defined here, once, from the model alone: answers, RFC 2136
// prerequisites, transfers, NOTIFY and signing all read Node. The site file's settings
// that shape the content (the TTL, the name servers' addresses, signing) are part of the model
// (Shape.DNS), so a change of them is a change of the site: it raises the serial, and
// a model kept for IXFR is rendered as it was served at its serial.

// SOA timers. The negative TTL (the SOA minimum) is short, so that a name created
// right after a client asked for it is found within a minute.
const (
	soaRefresh  = 300
	soaRetry    = 60
	soaExpire   = 1209600 // two weeks
	NegativeTTL = 60
)

// RRsets are the RRsets at one owner name, by type.
type RRsets map[uint16][]dns.RR

// Add puts rr in its type's RRset.
func (n RRsets) Add(rr dns.RR) { t := rr.Header().Rrtype; n[t] = append(n[t], rr) }

// TTL is the TTL of RRs without one of their own.
func (m *Model) TTL() uint32 {
	if t := m.shape.DNS.TTL; t != 0 {
		return t
	}
	return site.DefaultZoneTTL
}

// Node returns the RRsets at name (lower case, fully qualified), made for the caller
// alone, and whether the name exists: it has RRsets, or names below it do (an empty
// non-terminal). The DNSSEC records are not the model's: DNS adds them.
func (m *Model) Node(name string) (RRsets, bool) {
	n := RRsets{}
	owner := site.Name(name)
	ttl := m.TTL()
	if m.IsZone(name) {
		n.Add(m.SOA(name, ttl))
		for _, ns := range m.NameServerNames() {
			n.Add(&dns.NS{Hdr: hdr(name, dns.TypeNS, ttl), Ns: ns})
		}
	}
	if a4, ok := m.AddressOf(owner, false); ok {
		if a4.IsValid() {
			n.Add(m.AddressRR(name, a4))
		}
		if a6, _ := m.AddressOf(owner, true); a6.IsValid() {
			n.Add(m.AddressRR(name, a6))
		}
	} else if glue := m.GlueName(); glue != "" && name == glue {
		for _, a := range m.glueAddrs() {
			n.Add(m.AddressRR(name, a))
		}
	} else if m.isService(owner) {
		for _, a := range m.shape.DNS.NameServers {
			n.Add(m.AddressRR(name, a))
		}
	}
	if a, ok := site.ReverseAddr(owner); ok {
		if target := m.PTR(a); target != "" {
			n.Add(&dns.PTR{Hdr: hdr(name, dns.TypePTR, ttl), Ptr: target})
		}
	}
	for _, rr := range m.RecordsAt(owner) {
		rr = dns.Copy(rr)
		if rr.Header().Ttl == site.DefaultTTL {
			rr.Header().Ttl = ttl
		}
		n.Add(rr)
	}
	n.oneTTL()
	return n, len(n) > 0 || m.NameExists(owner)
}

// AddressOf is the address of the family asked (v6: IPv6, else IPv4) of the host or
// the named lease whose name owner is: a host's ip, or its ip6. ok says owner is such
// a name; the address is the zero Addr when it has none of that family.
func (m *Model) AddressOf(owner site.Name, v6 bool) (a netip.Addr, ok bool) {
	host, ok := m.HostnameOf(owner)
	if !ok {
		return netip.Addr{}, false
	}
	if h, found := m.Host(host); found {
		for _, a := range [2]netip.Addr{h.IP, h.IP6} {
			if a.IsValid() && a.Is6() == v6 {
				return a, true
			}
		}
		return netip.Addr{}, true
	}
	l4, named4 := m.LeaseNamed(host, false)
	l6, named6 := m.LeaseNamed(host, true)
	switch {
	case v6 && named6:
		return l6.IP, true
	case !v6 && named4:
		return l4.IP, true
	}
	return netip.Addr{}, named4 || named6
}

// oneTTL gives every RR of an RRset the set's lowest TTL: an RRset has one TTL (RFC
// 2181 §5.2), and records added at different TTLs (the site file, the API, updates)
// are served, and transferred, as one.
func (n RRsets) oneTTL() {
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

// Exists reports whether name exists, as Node does, without making its RRs: the
// names index counts every host's, lease's and record's owner name and those above
// them; the apexes and the NS glue are the rest.
func (m *Model) Exists(name string) bool {
	if m.NameExists(site.Name(name)) || m.IsZone(name) || m.isService(site.Name(name)) {
		return true
	}
	glue := m.GlueName()
	if glue == "" {
		return false
	}
	if name == glue {
		return true
	}
	a, ok := site.ReverseAddr(site.Name(name))
	return ok && m.isGlueAddr(a)
}

// PTR is the name the address a points back to: its host's, else its named lease's,
// else the NS glue's; "" for none.
func (m *Model) PTR(a netip.Addr) string {
	if h, ok := m.HostAt(a); ok {
		return string(m.FQDN(h.Name))
	}
	if l, ok := m.Lease(a); ok && l.Hostname != "" {
		return string(m.FQDN(l.Hostname)) // the write path gives no lease a host's name
	}
	if m.isGlueAddr(a) {
		return m.GlueName()
	}
	return ""
}

// NameServerNames are the zones' name servers: the hosts at the name servers'
// addresses, then the glue name when some address is no host's (or none is known).
func (m *Model) NameServerNames() []string {
	var out []string
	glue := false
	for _, a := range m.shape.DNS.NameServers {
		if h, ok := m.HostAt(a); ok {
			out = append(out, string(m.FQDN(h.Name)))
		} else {
			glue = true
		}
	}
	if glue || len(out) == 0 {
		out = append(out, m.nsName())
	}
	return out
}

// nsName is the name infrad gives the name servers that are no host.
func (m *Model) nsName() string { return string(site.GlueName(m.shape.Domain)) }

// GlueName is ns.<domain> when infrad gives it addresses itself (a name server's
// address that is no host's), "" otherwise. The name is then infrad's: no host,
// record or update may take it.
func (m *Model) GlueName() string {
	if !slices.ContainsFunc(m.shape.DNS.NameServers, m.isGlueAddr) {
		return ""
	}
	if _, ok := m.Host("ns"); ok {
		return "" // a store from before the rule that refuses such a host
	}
	return m.nsName()
}

// isGlueAddr reports whether a is a name server's address that is no host's.
func (m *Model) isGlueAddr(a netip.Addr) bool {
	if !slices.Contains(m.shape.DNS.NameServers, a) {
		return false
	}
	_, hosted := m.HostAt(a)
	return !hosted
}

// glueAddrs are the name servers' addresses that are no host's.
func (m *Model) glueAddrs() []netip.Addr {
	var out []netip.Addr
	for _, a := range m.shape.DNS.NameServers {
		if _, ok := m.HostAt(a); !ok {
			out = append(out, a)
		}
	}
	return out
}

func hdr(name string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

// AddressRR is name's A or AAAA record of a, at the zones' TTL.
func (m *Model) AddressRR(name string, a netip.Addr) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: hdr(name, dns.TypeA, m.TTL()), A: net.IP(a.AsSlice())}
	}
	return &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA, m.TTL()), AAAA: net.IP(a.AsSlice())}
}

// PTRRR is name's PTR record to target, at the zones' TTL.
func (m *Model) PTRRR(name, target string) dns.RR {
	return &dns.PTR{Hdr: hdr(name, dns.TypePTR, m.TTL()), Ptr: target}
}

// SOA is zone's SOA record, at ttl.
func (m *Model) SOA(zone string, ttl uint32) *dns.SOA {
	return &dns.SOA{Hdr: hdr(zone, dns.TypeSOA, ttl), Ns: m.NameServerNames()[0], Mbox: "hostmaster." + string(m.shape.Domain),
		Serial: m.serial, Refresh: soaRefresh, Retry: soaRetry, Expire: soaExpire, Minttl: NegativeTTL}
}

// Owners lists every owner name of zone, each once.
func (m *Model) Owners(zone string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(n site.Name) {
		if s := string(n); !seen[s] && m.ZoneOf(s) == zone {
			seen[s] = true
			out = append(out, s)
		}
	}
	add(site.Name(zone))
	for _, h := range m.Hosts() {
		add(m.FQDN(h.Name))
		for _, a := range h.Addrs() {
			add(site.ReverseName(a))
		}
	}
	for _, l := range m.Leases() {
		if l.Hostname != "" {
			add(m.FQDN(l.Hostname))
			add(site.ReverseName(l.IP))
		}
	}
	for _, r := range m.Records() {
		add(r.Name)
	}
	if g := m.GlueName(); g != "" {
		add(site.Name(g))
		for _, a := range m.glueAddrs() {
			add(site.ReverseName(a))
		}
	}
	for _, n := range m.shape.DNS.Services {
		if m.isService(n) {
			add(n)
		}
	}
	return out
}

// isService reports whether name is one infrad hands out for itself (Shape.DNS's
// Services) and answers with the name servers' addresses: some are known, and the
// site gives the name no address of its own (a host, a named lease from before the
// rule, A, AAAA or CNAME records).
func (m *Model) isService(name site.Name) bool {
	if len(m.shape.DNS.NameServers) == 0 || !slices.Contains(m.shape.DNS.Services, name) {
		return false
	}
	if _, ok := m.AddressOf(name, false); ok {
		return false
	}
	for _, rr := range m.RecordsAt(name) {
		if t := rr.Header().Rrtype; t == dns.TypeA || t == dns.TypeAAAA || t == dns.TypeCNAME {
			return false
		}
	}
	return true
}

// derivedOwner names the host, or the zones' name servers, whose derived RRset of
// type typ ("": any type) stands at name: an address (or a CNAME in its place) at a
// host's name or the glue name, a PTR (or CNAME) at their addresses' reverse names.
// It returns "" when there is none. Such RRsets are their owner's: no update or
// record changes them.
func (m *Model) derivedOwner(name site.Name, typ string) string {
	forward := typ == "" || typ == "A" || typ == "AAAA" || typ == "CNAME"
	reverse := typ == "" || typ == "PTR" || typ == "CNAME"
	if forward {
		if host, ok := m.HostnameOf(name); ok {
			if _, ok := m.Host(host); ok {
				return fmt.Sprintf("host %q", host)
			}
		}
		if g := m.GlueName(); g != "" && string(name) == g {
			return m.nameServersTitle()
		}
	}
	if a, ok := site.ReverseAddr(name); ok && reverse {
		if h, ok := m.HostAt(a); ok {
			return fmt.Sprintf("host %q", h.Name)
		}
		if m.isGlueAddr(a) && m.GlueName() != "" {
			return m.nameServersTitle()
		}
	}
	return ""
}

// nameServersTitle names the glue's owner in a refusal.
func (m *Model) nameServersTitle() string {
	return fmt.Sprintf("the zones' name server %s (%s: dns.advertise, or the cluster's nodes)", m.nsName(), site.JoinAddrs(m.glueAddrs()))
}

// takeLeaseName takes its name from the lease whose name is name (when forward), or
// whose address's reverse name it is (when reverse). An operator's record (the site
// file's, the API's, an update's) wins over a client's claim, in the transaction that
// writes the record.
func (t *txn) takeLeaseName(name site.Name, forward, reverse bool) {
	if host, named := t.m.HostnameOf(name); named && forward {
		t.unnameLeases(host)
	} else if a, rev := site.ReverseAddr(name); rev && reverse {
		if l, ok := t.m.Lease(a); ok && l.Hostname != "" {
			l.Hostname = ""
			t.putLease(l)
		}
	}
}

// unnameLeases takes hostname from the leases, of either family, that have it.
func (t *txn) unnameLeases(hostname string) {
	for _, v6 := range []bool{false, true} {
		if l, ok := t.m.LeaseNamed(hostname, v6); ok {
			l.Hostname = ""
			t.putLease(l)
		}
	}
}

// Signatures are part of what a zone serves, so their times are the model's: every
// signature made for the model at a serial has the validity that SignedAt gives, and
// keys publish and sign as of SignedAt, so a restart, another box, or the clock moving
// on makes the same signatures for the same serial (ECDSA signing is deterministic).
// DNS moves SignedAt forward, raising the serial, before signatures age and when a
// key's time comes; secondaries then fetch the zone anew.

// SignedAt is the time the zones' signatures are made as of; zero: not yet set.
func (m *Model) SignedAt() time.Time { return m.signedAt }

// Resign moves the zones' signing time from From to At. Two boxes moving it at once
// make one change: the second finds it moved already and changes nothing.
type Resign struct {
	Stamp
	From time.Time `json:"from"`
}

func (c Resign) apply(t *txn) (any, error) {
	if !t.m.signedAt.Equal(c.From) {
		return false, nil
	}
	t.m.signedAt = c.At.Round(0).UTC()
	t.dns = true
	return true, nil
}

// Resign moves the signing time from from to at (see the command Resign).
func (m *IPAM) Resign(ctx context.Context, from, at time.Time) error {
	_, err := m.Apply(ctx, Resign{Stamp: Stamp{At: at, By: "dnssec"}, From: from})
	return err
}
