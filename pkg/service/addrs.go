package service

import (
	"net"
	"net/netip"
)

// Addrs are an interface's addresses, as netip takes them: what the services that
// answer on an interface (DHCP's server identifier, router advertisements, DHCPv6)
// read of it. An interface gone, or one whose addresses cannot be read, has none.
func Addrs(ifi *net.Interface) []netip.Addr {
	raw, err := ifi.Addrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(raw))
	for _, a := range raw {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out
}
