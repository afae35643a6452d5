package site

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// Set is everything IPAM holds at one moment, from the site file or from the store.
type Set struct {
	Domain  Name   // the forward zone hosts live in
	Zones   []Name // further authoritative zones; Domain need not be repeated here
	Subnets []Subnet
	Hosts   []Host
	Records []Record
	// Changes bounds the change log; zero: the defaults.
	Changes ChangeLimits `json:",omitzero"`
	// DNS is what the site file says of the zones' content.
	DNS ZoneSettings `json:",omitzero"`
	// Boot names the boot profiles (boot.profiles) a host or a subnet may name.
	Boot []string `json:",omitempty"`
}

// Problem is one rule a Set breaks, placed at the object it blames.
type Problem struct {
	List     string // the object's list in the Set: "subnets", "hosts" or "records"
	Index    int    // its index there
	Field    string // the field at fault: "ip", "ranges[1]", "ranges[1].kind"; "" for the whole object
	Message  string // what, naming every object involved
	Conflict bool   // another object is involved; false: the object is wrong on its own
}

// Path is where the problem stands, as a key path into the Set: "hosts[3].ip".
func (p Problem) Path() string {
	path := fmt.Sprintf("%s[%d]", p.List, p.Index)
	if p.Field != "" {
		path += "." + p.Field
	}
	return path
}

func (p Problem) String() string { return p.Path() + ": " + p.Message }

// at names an object of a Set.
type at struct {
	list  string
	index int
}

// Problems checks every rule and returns each broken one, in the order of the Set.
// An empty result means the Set is consistent.
func (s *Set) Problems() []Problem {
	c := checker{set: s}
	c.subnets()
	c.hosts()
	c.records()
	return c.problems
}

type checker struct {
	set      *Set
	problems []Problem
}

// addf reports a rule the object at a breaks on its own.
func (c *checker) addf(a at, field, format string, args ...any) {
	c.problems = append(c.problems, Problem{List: a.list, Index: a.index, Field: field, Message: fmt.Sprintf(format, args...)})
}

// conflictf reports a rule broken between two objects; the message names both.
func (c *checker) conflictf(a at, field, format string, args ...any) {
	c.problems = append(c.problems, Problem{List: a.list, Index: a.index, Field: field, Message: fmt.Sprintf(format, args...), Conflict: true})
}

func (c *checker) subnets() {
	names := map[string]int{}
	for i, sn := range c.set.Subnets {
		at := at{"subnets", i}
		switch err := checkLabel(sn.Name, false); {
		case sn.Name == "":
			c.addf(at, "name", "a subnet needs a name")
		case err != nil:
			c.addf(at, "name", "%q is not a valid subnet name: %v", sn.Name, err)
		}
		if j, dup := names[sn.Name]; dup && sn.Name != "" {
			c.conflictf(at, "name", "subnet name %q is taken by subnet %s", sn.Name, c.set.Subnets[j].CIDR)
		} else {
			names[sn.Name] = i
		}
		c.bootProfile(at, sn.Boot, false)
		if sn.RA != nil && (!sn.CIDR.Addr().Is6() || sn.Purpose != PurposeNodes) {
			c.addf(at, "ra", "router advertisements are for IPv6 subnets of nodes: %s (%s) is not one", sn.Name, sn.CIDR)
		}
		switch {
		case sn.DHCP6 == "":
		case sn.DHCP6 != DHCP6Stateful && sn.DHCP6 != DHCP6Stateless:
			c.addf(at, "dhcp6", "%q is not a DHCPv6 mode: stateful (addresses and options) or stateless (options alone)", sn.DHCP6)
		case !sn.CIDR.Addr().Is6() || sn.Purpose != PurposeNodes:
			c.addf(at, "dhcp6", "DHCPv6 is for IPv6 subnets of nodes: %s (%s) is not one", sn.Name, sn.CIDR)
		}
		c.delegation(at, i, sn)
		if !sn.Purpose.Valid() {
			c.addf(at, "purpose", "%q is not a purpose: use nodes, pods or services", sn.Purpose)
		}
		for j := range i {
			if o := c.set.Subnets[j]; o.CIDR.Overlaps(sn.CIDR) {
				c.conflictf(at, "cidr", "subnet %q (%s) overlaps subnet %q (%s)", sn.Name, sn.CIDR, o.Name, o.CIDR)
			}
		}
		if gw := sn.Gateway; gw.IsValid() && !sn.CIDR.Contains(gw) {
			c.addf(at, "gateway", "%s is outside subnet %q (%s)", gw, sn.Name, sn.CIDR)
		} else if name := edgeName(sn.CIDR, gw); gw.IsValid() && name != "" {
			c.addf(at, "gateway", "%s is the %s of subnet %q", gw, name, sn.Name)
		}
		c.ranges(at, sn)
	}
}

// delegation checks the prefix delegation pool of sn, the site's i-th subnet: an IPv6
// block that stateful DHCPv6 hands out in prefixes longer than it, that no subnet and
// no other pool overlaps.
func (c *checker) delegation(at at, i int, sn Subnet) {
	d := sn.Delegate
	switch {
	case d == nil:
		return
	case sn.DHCP6 != DHCP6Stateful:
		c.addf(at, "delegate", "prefixes are delegated by stateful DHCPv6: subnet %q needs dhcp6: stateful", sn.Name)
	case !d.Prefix.IsValid():
		return // named where it was parsed
	case !d.Prefix.Addr().Is6():
		c.addf(at, "delegate.prefix", "%s is not an IPv6 prefix", d.Prefix)
	case d.Length <= d.Prefix.Bits() || d.Length > 64:
		c.addf(at, "delegate.length", "%d: the delegated prefixes are longer than the pool (%s) and at most /64", d.Length, d.Prefix)
	}
	for j, o := range c.set.Subnets {
		if o.CIDR.IsValid() && d.Prefix.IsValid() && o.CIDR.Overlaps(d.Prefix) {
			c.conflictf(at, "delegate.prefix", "the delegation pool %s overlaps subnet %q (%s)", d.Prefix, o.Name, o.CIDR)
		}
		if od := o.Delegate; j < i && od != nil && od.Prefix.IsValid() && d.Prefix.IsValid() && od.Prefix.Overlaps(d.Prefix) {
			c.conflictf(at, "delegate.prefix", "the delegation pool %s overlaps subnet %q's, %s", d.Prefix, o.Name, od.Prefix)
		}
	}
}

func (c *checker) ranges(at at, sn Subnet) {
	for i, r := range sn.Ranges {
		rat := fmt.Sprintf("ranges[%d]", i)
		if !r.Kind.Valid() {
			c.addf(at, rat+".kind", "%q is not a range kind: use dhcp or reserved", r.Kind)
		}
		if r.Kind == RangeReserved && r.Name == "" {
			c.addf(at, rat+".name", "a reserved range needs a name (metallb, vip, ...)")
		}
		if r.Kind == RangeDHCP && sn.Purpose != PurposeNodes {
			c.addf(at, rat+".kind", "subnet %q is for %s: DHCP ranges belong in nodes subnets", sn.Name, sn.Purpose)
		}
		if r.End.Less(r.Start) {
			c.addf(at, rat, "%s starts after it ends", describeRange(r))
			continue
		}
		if !sn.CIDR.Contains(r.Start) || !sn.CIDR.Contains(r.End) {
			c.addf(at, rat, "%s is not inside subnet %q (%s)", describeRange(r), sn.Name, sn.CIDR)
			continue
		}
		if r.Kind == RangeDHCP {
			for _, a := range []netip.Addr{sn.Gateway, sn.CIDR.Addr(), Broadcast(sn.CIDR)} {
				if name := AddressName(sn, a); a.IsValid() && name != "" && r.Contains(a) {
					c.addf(at, rat, "%s holds %s, the %s of subnet %q", describeRange(r), a, name, sn.Name)
				}
			}
		}
		for j := range i {
			if o := sn.Ranges[j]; o.Overlaps(r) {
				c.conflictf(at, rat, "%s overlaps %s of subnet %q", describeRange(r), describeRange(o), sn.Name)
			}
		}
	}
}

// piSerial is a Raspberry Pi's serial number as its TFTP folder is named.
var piSerial = regexp.MustCompile(`^[0-9a-f]{8}$`)

// sshPrincipal is what a principal may be: a name or an address, as sshd compares it
// with the host a client asked for (no spaces, no commas, no wildcards).
var sshPrincipal = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._:@-]{0,252}$`)

// CheckSSHPrincipal says what is wrong with p as an SSH principal.
func CheckSSHPrincipal(p string) error {
	if !sshPrincipal.MatchString(p) {
		return fmt.Errorf("%q is not an SSH principal: a name or an address, of letters, digits and . _ : @ -", p)
	}
	return nil
}

// bootProfile checks the boot profile an object names: one of the site's, or (for a
// host, overriding its subnet's) none.
func (c *checker) bootProfile(a at, name string, host bool) {
	switch {
	case name == "" || slices.Contains(c.set.Boot, name):
	case name == BootNone && host:
	case len(c.set.Boot) == 0:
		c.addf(a, "boot", "no boot profile %q: the site has none (boot.profiles)", name)
	default:
		c.addf(a, "boot", "no boot profile %q: boot.profiles has %s", name, strings.Join(c.set.Boot, ", "))
	}
}

func (c *checker) hosts() {
	glue := c.set.glue()
	byName := map[string]int{}
	byIP := map[netip.Addr]int{}
	byMAC := map[MAC]int{}
	byPiSerial := map[string]int{}
	byDUID := map[string]int{}
	for i, h := range c.set.Hosts {
		at := at{"hosts", i}
		if h.Name == "" {
			c.addf(at, "name", "a host needs a name")
		} else if err := CheckHostname(h.Name); err != nil {
			c.addf(at, "name", "%v", err)
		} else if err := c.absoluteHostname(h.Name); err != nil {
			c.addf(at, "name", "%v", err)
		} else if j, dup := byName[h.Name]; dup {
			c.conflictf(at, "name", "host name %q is taken by the host at %s", h.Name, c.set.Hosts[j].IP)
		} else if len(glue) > 0 && HostFQDN(h.Name, c.set.Domain) == c.set.nsName() {
			c.conflictf(at, "name", "%s is the zones' name server, whose address infrad serves (%s, from dns.advertise or the cluster's nodes): give host %q that address, or another name", c.set.nsName(), JoinAddrs(glue), h.Name)
		} else {
			byName[h.Name] = i
		}
		if j, dup := byIP[h.IP]; dup {
			c.conflictf(at, "ip", "%s is already the address of host %q", h.IP, c.set.Hosts[j].Name)
		} else {
			byIP[h.IP] = i
			c.hostAddress(at, "ip", h.IP, h)
		}
		if h.IP6.IsValid() {
			switch j, dup := byIP[h.IP6]; {
			case !h.IP6.Is6() || h.IP6.Is4In6():
				c.addf(at, "ip6", "%s is not an IPv6 address: ip6 is a dual-stack host's IPv6 address", h.IP6)
			case !h.IP.Is4():
				c.addf(at, "ip6", "host %q's ip %s is IPv6 already: ip6 is the second address of a host whose ip is IPv4", h.Name, h.IP)
			case dup:
				c.conflictf(at, "ip6", "%s is already the address of host %q", h.IP6, c.set.Hosts[j].Name)
			default:
				byIP[h.IP6] = i
				c.hostAddress(at, "ip6", h.IP6, h)
			}
		}
		c.bootProfile(at, h.Boot, true)
		if h.DUID != "" {
			if j, dup := byDUID[h.DUID]; dup {
				c.conflictf(at, "duid", "DUID %s is already host %q's", h.DUID, c.set.Hosts[j].Name)
			} else {
				byDUID[h.DUID] = i
			}
			if !slices.ContainsFunc(h.Addrs(), netip.Addr.Is6) {
				c.addf(at, "duid", "a DUID reserves an IPv6 address for DHCPv6: host %q has none (ip6)", h.Name)
			}
		}
		if h.PiSerial != "" {
			if !piSerial.MatchString(h.PiSerial) {
				c.addf(at, "pi_serial", "%q is not a Raspberry Pi serial number: its last 8 hex digits, as the Pi names its TFTP folder (cat /proc/cpuinfo)", h.PiSerial)
			} else if j, dup := byPiSerial[h.PiSerial]; dup {
				c.conflictf(at, "pi_serial", "Pi serial %s is already host %q's", h.PiSerial, c.set.Hosts[j].Name)
			} else {
				byPiSerial[h.PiSerial] = i
			}
		}
		if h.SSH != nil {
			for j, p := range h.SSH.Principals {
				if err := CheckSSHPrincipal(p); err != nil {
					c.addf(at, fmt.Sprintf("ssh.principals[%d]", j), "%v", err)
				}
			}
		}
		if h.MAC.IsZero() {
			if h.Boot != "" && h.Boot != BootNone || h.BootOnce {
				c.addf(at, "boot", "host %q has no MAC, so no machine is known to boot as it", h.Name)
			}
			continue
		}
		if h.MAC.IsMulticast() {
			c.addf(at, "mac", "%s is a multicast address, which no network card has as its own", h.MAC)
		} else if j, dup := byMAC[h.MAC]; dup {
			c.conflictf(at, "mac", "%s is already the MAC of host %q", h.MAC, c.set.Hosts[j].Name)
		} else {
			byMAC[h.MAC] = i
		}
	}
}

// absoluteHostname checks an absolute host name against the site's forward zones: it
// lies in one of them, and is not one label under the domain, which is written as its
// label so that each host has one name.
func (c *checker) absoluteHostname(name string) error {
	n := Name(name)
	if !strings.HasSuffix(name, ".") || c.set.Domain == "" {
		return nil
	}
	if label, ok := strings.CutSuffix(name, "."+string(c.set.Domain)); ok && !strings.Contains(label, ".") {
		return fmt.Errorf("%q is one label under the domain: name it %q", name, label)
	}
	if !slices.ContainsFunc(append([]Name{c.set.Domain}, c.set.Zones...), n.IsIn) {
		return fmt.Errorf("%s is outside the site's zones (%s and dns.zones): a host's name is one DNS serves", name, c.set.Domain)
	}
	return nil
}

// hostAddress checks that h's address is a node address that nothing else owns.
func (c *checker) hostAddress(at at, field string, ip netip.Addr, h Host) {
	sn, ok := c.set.SubnetOf(ip)
	switch {
	case !ok:
		c.addf(at, field, "%s is outside every subnet", ip)
		return
	case sn.Purpose != PurposeNodes:
		c.addf(at, field, "%s is in subnet %q, which is for %s: hosts belong in nodes subnets", ip, sn.Name, sn.Purpose)
		return
	}
	if name := AddressName(sn, ip); name != "" {
		c.conflictf(at, field, "%s is the %s of subnet %q, so host %q cannot have it", ip, name, sn.Name, h.Name)
		return
	}
	for _, r := range sn.Ranges {
		// A DHCP pool's address may be a host's (an in-pool reservation, as pinning a
		// lease makes): the pool skips it. A reserved range's never.
		if r.Kind == RangeReserved && r.Contains(ip) {
			c.conflictf(at, field, "%s is inside %s of subnet %q, so host %q cannot have it", ip, describeRange(r), sn.Name, h.Name)
			return
		}
	}
}

func (c *checker) records() {
	hostNames := map[Name]string{}
	reverseNames := map[Name]string{} // of the hosts whose address a PTR or CNAME record names
	pointers := map[netip.Addr]bool{}
	for _, r := range c.set.Records {
		if a, ok := ReverseAddr(r.Name); ok && (r.Type == "PTR" || r.Type == "CNAME") {
			pointers[a] = true
		}
	}
	for _, h := range c.set.Hosts {
		hostNames[HostFQDN(h.Name, c.set.Domain)] = h.Name
		for _, a := range h.Addrs() {
			if pointers[a] {
				reverseNames[ReverseName(a)] = h.Name
			}
		}
	}
	glue := c.set.glue()
	byName := map[Name][]int{}
	for i, r := range c.set.Records {
		at := at{"records", i}
		if !c.set.inZones(r.Name) {
			c.addf(at, "name", "%s is outside the site's zones (%s)", r.Name, c.set.zoneList())
			continue
		}
		address, pointer := r.Type == "A" || r.Type == "AAAA" || r.Type == "CNAME", r.Type == "PTR" || r.Type == "CNAME"
		if host, ok := hostNames[r.Name]; ok && address {
			c.conflictf(at, "", "%s is host %q, whose %s follows from the host: change the host instead", r.Name, host, addressRRType(r.Type))
			continue
		}
		if host, ok := reverseNames[r.Name]; ok && pointer {
			c.conflictf(at, "", "%s is the reverse name of host %q, whose PTR record follows from the host: an address has one name", r.Name, host)
			continue
		}
		if len(glue) > 0 && ((r.Name == c.set.nsName() && address) || (pointer && slices.ContainsFunc(glue, func(a netip.Addr) bool { return ReverseName(a) == r.Name }))) {
			c.conflictf(at, "", "%s belongs to the zones' name server %s, whose address infrad serves (%s, from dns.advertise or the cluster's nodes)", r.Name, c.set.nsName(), JoinAddrs(glue))
			continue
		}
		for _, j := range byName[r.Name] {
			if o := c.set.Records[j]; r.Type == "CNAME" || o.Type == "CNAME" {
				c.conflictf(at, "", "a CNAME cannot stand beside other data: %s has a %s record (%s) too", r.Name, o.Type, o.Value)
				break
			}
		}
		byName[r.Name] = append(byName[r.Name], i)
	}
}

func addressRRType(t string) string {
	if t == "CNAME" {
		return "address record"
	}
	return t + " record"
}

// nsName is the name the zones give their name servers that are no host's.
func (s *Set) nsName() Name { return GlueName(s.Domain) }

// glue is the name servers' addresses that are no host's: the addresses infrad gives
// nsName itself.
func (s *Set) glue() []netip.Addr {
	if len(s.DNS.NameServers) == 0 {
		return nil
	}
	hosted := map[netip.Addr]bool{}
	for _, h := range s.Hosts {
		for _, a := range h.Addrs() {
			if slices.Contains(s.DNS.NameServers, a) {
				hosted[a] = true
			}
		}
	}
	var out []netip.Addr
	for _, a := range s.DNS.NameServers {
		if !hosted[a] {
			out = append(out, a)
		}
	}
	return out
}

// inZones reports whether n falls in one of the site's forward zones, or is the
// reverse name of an address in one of its subnets.
func (s *Set) inZones(n Name) bool {
	if n.IsIn(s.Domain) {
		return true
	}
	for _, z := range s.Zones {
		if n.IsIn(z) {
			return true
		}
	}
	a, ok := ReverseAddr(n)
	if !ok {
		return false
	}
	_, ok = s.SubnetOf(a)
	return ok
}

func (s *Set) zoneList() string {
	names := []string{string(s.Domain)}
	for _, z := range s.Zones {
		names = append(names, string(z))
	}
	return strings.Join(names, ", ") + " and the reverse zones of its subnets"
}

// SubnetOf returns the first subnet holding a.
func (s *Set) SubnetOf(a netip.Addr) (Subnet, bool) {
	for _, sn := range s.Subnets {
		if sn.CIDR.Contains(a) {
			return sn, true
		}
	}
	return Subnet{}, false
}

// AddressName names the addresses of sn that nothing may be given: its gateway,
// network and broadcast addresses. It returns "" for any other address.
func AddressName(sn Subnet, a netip.Addr) string {
	if a == sn.Gateway {
		return "gateway"
	}
	return edgeName(sn.CIDR, a)
}

// edgeName names the network and broadcast addresses of an IPv4 prefix. IPv6 has no
// broadcast, and /31 and /32 use every address (RFC 3021).
func edgeName(p netip.Prefix, a netip.Addr) string {
	switch {
	case !a.Is4() || p.Bits() >= 31:
		return ""
	case a == p.Addr():
		return "network address"
	case a == Broadcast(p):
		return "broadcast address"
	}
	return ""
}

// Broadcast returns the last address of an IPv4 prefix, or the zero Addr for IPv6.
func Broadcast(p netip.Prefix) netip.Addr {
	if !p.Addr().Is4() {
		return netip.Addr{}
	}
	b := p.Masked().Addr().As4()
	host := ^uint32(0) >> p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func describeRange(r Range) string {
	if r.Name != "" {
		return fmt.Sprintf("%s range %q (%s-%s)", r.Kind, r.Name, r.Start, r.End)
	}
	return fmt.Sprintf("%s range %s-%s", r.Kind, r.Start, r.End)
}
