package site

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// reverseZones returns the in-addr.arpa or ip6.arpa zones that cover prefix p.
//
// Reverse zones are cut on label boundaries: an octet for IPv4, a nibble for IPv6.
// A prefix on a boundary is one zone (10.0.40.0/24 is 40.0.10.in-addr.arpa). A prefix
// between boundaries is rounded down to the next boundary and becomes every zone it
// covers: 10.0.32.0/20 is the sixteen zones 32.0.10.in-addr.arpa to
// 47.0.10.in-addr.arpa. A prefix longer than /24 (IPv4) is served as its whole /24 zone.
func reverseZones(p netip.Prefix) []string {
	step, full := 8, 24 // IPv4: octets, and no zone below a /24
	if p.Addr().Is6() {
		step, full = 4, 124
	}
	bits := min(p.Bits(), full)
	zoneBits := (bits + step - 1) / step * step
	if zoneBits == 0 {
		zoneBits = step
	}
	base := netip.PrefixFrom(p.Addr(), bits).Masked()
	count := 1 << (zoneBits - bits)
	zones := make([]string, 0, count)
	a := base.Addr()
	for range count {
		zones = append(zones, reverseZone(a, zoneBits))
		a = addAt(a, zoneBits)
	}
	return zones
}

// reverseZone is the reverse zone of the /bits network holding a.
func reverseZone(a netip.Addr, bits int) string {
	full := string(ReverseName(a))
	labels := dns.SplitDomainName(full)
	keep := bits/8 + 2 // octets, then in-addr.arpa
	if a.Is6() {
		keep = bits/4 + 2 // nibbles, then ip6.arpa
	}
	return strings.Join(labels[len(labels)-keep:], ".") + "."
}

// addAt returns a plus one unit at prefix length bits: the first address of the next
// /bits network.
func addAt(a netip.Addr, bits int) netip.Addr {
	b := a.As16()
	bit := bits + 128 - a.BitLen() - 1 // index of the /bits network's last bit in b
	for i := bit / 8; i >= 0; i-- {
		inc := byte(1) << (7 - bit%8)
		if i != bit/8 {
			inc = 1
		}
		sum := b[i] + inc
		carry := sum < b[i]
		b[i] = sum
		if !carry {
			break
		}
	}
	if a.Is4() {
		return netip.AddrFrom16(b).Unmap()
	}
	return netip.AddrFrom16(b)
}

// Zones returns every zone the site is authoritative for: the domain, the further
// zones, and the reverse zones of its nodes subnets, longest first (so that the first
// that holds a name is its zone).
func Zones(domain Name, extra []Name, subnets []Subnet) []string {
	if domain == "" {
		return nil
	}
	zones := []string{string(domain)}
	for _, z := range extra {
		zones = append(zones, string(z))
	}
	seen := map[string]bool{}
	for _, sn := range subnets {
		if sn.Purpose != PurposeNodes {
			continue
		}
		for _, z := range reverseZones(sn.CIDR) {
			if !seen[z] {
				seen[z] = true
				zones = append(zones, z)
			}
		}
	}
	slices.SortStableFunc(zones, func(a, b string) int { return len(b) - len(a) })
	return zones
}

// InZone is dns.IsSubDomain(zone, name) for fully qualified names, without splitting
// them into labels (which allocates, and was two fifths of a signed answer's cost):
// name is zone, or ends in "." + zone, in any case. A name with escapes takes the
// long way.
func InZone(zone, name string) bool {
	if strings.IndexByte(name, '\\') >= 0 {
		return dns.IsSubDomain(zone, name)
	}
	if zone == "." {
		return true
	}
	n := len(name) - len(zone)
	return n >= 0 && strings.EqualFold(name[n:], zone) && (n == 0 || name[n-1] == '.')
}

// GlueName is the name of the zones' name servers that are no host: ns.<domain>.
func GlueName(domain Name) Name { return "ns." + domain }

// JoinAddrs lists addresses for a message: "10.0.40.2, 10.0.40.3".
func JoinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
