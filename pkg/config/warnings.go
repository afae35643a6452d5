package config

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/infrad/infrad/pkg/site"
)

// Warning is a setting that is valid but likely not what the site wants: infrad serves
// it, and infrad validate and the start log say why it may disappoint.
type Warning struct {
	Path string // the key path, as in the site file
	Msg  string
}

func (w Warning) String() string { return w.Path + ": " + w.Msg }

// Warnings returns what is valid in s but likely to disappoint, in key-path order.
func (s *Site) Warnings() []Warning {
	var out []Warning
	if !s.inZones(s.CA.Name) {
		out = append(out, Warning{"ca.name", fmt.Sprintf("%s is outside the site's zones: infrad's DNS cannot give it an address, so ACME clients and cert-manager must resolve it elsewhere", s.CA.Name)})
	}
	wildcard := slices.ContainsFunc(s.DNS.Listen, func(l netip.AddrPort) bool { return l.Addr().IsUnspecified() })
	if len(s.NameServers()) == 0 && wildcard { // (a cluster's serving nodes are its name servers)
		out = append(out, Warning{"dns.advertise", fmt.Sprintf("not set, and dns.listen is a wildcard: the zones' name server ns.%s has no address, so BIND and Knot secondaries refuse the zones, DHCP clients are told the interface's address, and the names infrad hands out for itself (%s) have none; set it to the address clients and secondaries reach infrad at", s.Domain, site.JoinNames(s.ServiceNames()))})
	}
	if a := s.DNS.Advertise; len(s.DHCP.Interfaces) > 0 && a.IsLoopback() {
		out = append(out, Warning{"dns.advertise", fmt.Sprintf("%s is a loopback address (the first of dns.listen when dns.advertise is not set): DHCP clients are told DNS and NTP are there, on their own machines; set dns.advertise to infrad's address on the site's network", a)})
	}
	if len(s.DHCP.Interfaces) > 0 && !s.servesNTPFor(s.DNS.Advertise) {
		where, listen := "the DHCP interface's address", "0.0.0.0:123"
		if a := s.DNS.Advertise; a.IsValid() {
			where, listen = a.String()+" (dns.advertise)", netip.AddrPortFrom(a, 123).String()+" or "+listen
		}
		out = append(out, Warning{"ntp.listen", fmt.Sprintf("DHCP clients are told NTP is at %s, port 123, where infrad does not listen: they will get no time from it (listen on %s, or give the subnets dhcp_options.ntp)", where, listen)})
	}
	if len(s.NameServers()) == 0 {
		for i, h := range s.Hosts {
			if h.Name == "ns" {
				out = append(out, Warning{fmt.Sprintf("hosts[%d].name", i), fmt.Sprintf("host \"ns\" (%s) becomes the zones' name server ns.%s, since no dns.advertise says where infrad answers: secondaries and resolvers will ask %s; set dns.advertise, or give the host another name", h.IP, s.Domain, h.IP)})
			}
		}
	}
	return out
}

// servesNTPFor reports whether NTP listens on port 123 at a (any address when a is zero
// and a listener is a wildcard).
func (s *Site) servesNTPFor(a netip.Addr) bool {
	return slices.ContainsFunc(s.NTP.Listen, func(l netip.AddrPort) bool {
		return l.Port() == 123 && (l.Addr().IsUnspecified() || (a.IsValid() && l.Addr() == a))
	})
}
