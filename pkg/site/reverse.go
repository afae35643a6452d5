package site

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// ReverseAddr returns the address whose reverse name n is ("10.40.0.10.in-addr.arpa."
// is 10.0.40.10), or false when n is not the full reverse name of one address.
func ReverseAddr(n Name) (netip.Addr, bool) {
	s := string(n)
	if rest, ok := strings.CutSuffix(s, ".in-addr.arpa."); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, l := range labels {
			v, err := strconv.ParseUint(l, 10, 8)
			if err != nil || (len(l) > 1 && l[0] == '0') {
				return netip.Addr{}, false
			}
			b[3-i] = byte(v)
		}
		return netip.AddrFrom4(b), true
	}
	if rest, ok := strings.CutSuffix(s, ".ip6.arpa."); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, l := range labels {
			v, err := strconv.ParseUint(l, 16, 4)
			if err != nil || len(l) != 1 {
				return netip.Addr{}, false
			}
			nibble := 31 - i
			b[nibble/2] |= byte(v) << (4 * (1 - nibble%2))
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// ReverseName is the PTR owner name of a ("10.40.0.10.in-addr.arpa.").
func ReverseName(a netip.Addr) Name {
	n, err := dns.ReverseAddr(a.String())
	if err != nil {
		panic("ipam: ReverseAddr of a valid address: " + err.Error())
	}
	return Name(n)
}
