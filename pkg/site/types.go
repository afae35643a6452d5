// Package site is the vocabulary of a site and its rules, without a store: names,
// MACs and addresses; subnets with their ranges, hosts and DNS records as the site file
// and the API describe them (the specs) and as they are checked (Set.Problems: every
// address with exactly one owner, every name in a zone, each problem with its key path);
// the zones a site serves and the settings that shape them. pkg/config reads the site
// file into it; pkg/ipam keeps it in the store and changes it by commands.
package site

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Owner says who declared an object. The site file owns what it declares: reconciled
// on start and reload, and read-only through the API. The API owns what it creates,
// and the file never touches it.
type Owner string

const (
	OwnerFile Owner = "file"
	OwnerAPI  Owner = "api"
)

// Purpose says what a subnet is for.
type Purpose string

const (
	// PurposeNodes subnets hold hosts, DHCP pools and reserved ranges.
	PurposeNodes Purpose = "nodes"
	// PurposePods and PurposeServices are Kubernetes-internal ranges, held only so
	// that nothing else can overlap them.
	PurposePods     Purpose = "pods"
	PurposeServices Purpose = "services"
)

// Valid reports whether p is one of the known purposes.
func (p Purpose) Valid() bool {
	return p == PurposeNodes || p == PurposePods || p == PurposeServices
}

// RangeKind says who hands out the addresses of a range.
type RangeKind string

const (
	// RangeDHCP addresses are leased to clients without a reservation.
	RangeDHCP RangeKind = "dhcp"
	// RangeReserved addresses belong to something outside infrad (MetalLB, a VIP).
	RangeReserved RangeKind = "reserved"
)

// Valid reports whether k is one of the known kinds.
func (k RangeKind) Valid() bool { return k == RangeDHCP || k == RangeReserved }

// Subnet is one IP network of the site.
type Subnet struct {
	Name    string       `json:"name"`
	CIDR    netip.Prefix `json:"cidr"`              // masked: no host bits set
	Gateway netip.Addr   `json:"gateway,omitzero"`  // zero when the subnet has none
	Purpose Purpose      `json:"purpose"`           // never empty
	Ranges  []Range      `json:"ranges,omitempty"`  // ordered as declared
	Comment string       `json:"comment,omitempty"` // free text for people
	DHCP    *DHCPOptions `json:"dhcp_options,omitempty"`
	Boot    string       `json:"boot,omitempty"` // the boot profile of its clients without one of their own; "": none
	// RA has infrad send router advertisements for the (IPv6) subnet; nil: none.
	RA *SubnetRA `json:"ra,omitempty"`
	// DHCP6 has infrad answer DHCPv6 for the (IPv6) subnet: DHCP6Stateful (addresses
	// and options) or DHCP6Stateless (options alone); "": not.
	DHCP6 string `json:"dhcp6,omitempty"`
	// Delegate has DHCPv6 delegate prefixes of Delegate.Prefix to the subnet's
	// clients that ask for them (IA_PD, RFC 8415): routers of the networks behind
	// them. nil: none.
	Delegate *Delegation `json:"delegate,omitempty"`
	Owner    Owner       `json:"owner"`
}

// Delegation is a pool of IPv6 prefixes that DHCPv6 delegates, each of Length bits:
// a block of the site's address space that no subnet overlaps.
type Delegation struct {
	Prefix netip.Prefix `json:"prefix"` // masked
	Length int          `json:"length"` // of each delegated prefix: more than Prefix's bits, at most 64
}

// LeaseHome is the subnet a lease at a belongs to: the one that holds a, or, for a
// prefix of length bits at a that DHCPv6 delegated (length > 0), the one whose pool
// it is from.
func LeaseHome(subnets []Subnet, a netip.Addr, length int) (Subnet, bool) {
	for _, sn := range subnets {
		if length == 0 && sn.CIDR.Contains(a) || length != 0 && sn.Delegate.Contains(netip.PrefixFrom(a, length)) {
			return sn, true
		}
	}
	return Subnet{}, false
}

// Contains reports whether p is one of d's prefixes: of its length, inside it.
func (d *Delegation) Contains(p netip.Prefix) bool {
	return d != nil && p.IsValid() && p.Bits() == d.Length && p.Masked() == p && d.Prefix.Contains(p.Addr())
}

// The DHCPv6 modes of a subnet.
const (
	DHCP6Stateful  = "stateful"
	DHCP6Stateless = "stateless"
)

// SubnetRA is how infrad advertises an IPv6 subnet (RFC 4861): its prefix for
// SLAAC, infrad's DNS (RDNSS) and the domain (DNSSL).
type SubnetRA struct {
	// Router says infrad is the link's router: its advertisements carry a router
	// lifetime, and hosts route through it. false: lifetime 0, no default route.
	Router bool `yaml:"router" json:"router,omitempty"`
}

// Range is a span of addresses inside a subnet, both ends included.
type Range struct {
	Kind  RangeKind  `json:"kind"`
	Name  string     `json:"name,omitempty"` // required for reserved ranges
	Start netip.Addr `json:"start"`
	End   netip.Addr `json:"end"` // Start <= End
}

// Contains reports whether a lies inside r.
func (r Range) Contains(a netip.Addr) bool {
	return r.Start.Compare(a) <= 0 && a.Compare(r.End) <= 0
}

// Overlaps reports whether r and o share an address.
func (r Range) Overlaps(o Range) bool {
	return r.Start.Compare(o.End) <= 0 && o.Start.Compare(r.End) <= 0
}

// Host is one machine of the site: from it follow its DHCP reservation (when it has
// a MAC), its A or AAAA record and its PTR record, and a dual-stack host's AAAA and
// ip6.arpa PTR.
type Host struct {
	Name string     `json:"name"` // hostname relative to the site's domain, lower case
	IP   netip.Addr `json:"ip"`
	// IP6 is a dual-stack host's IPv6 address (its IP is IPv4); zero: none. Its AAAA
	// and ip6.arpa PTR follow from it as the A and PTR follow from IP.
	IP6 netip.Addr `json:"ip6,omitzero"`
	MAC MAC        `json:"mac,omitzero"` // zero for a host without DHCP
	// DUID reserves the host's IPv6 address for the DHCPv6 client with this DUID (in
	// hex, lower case), beside its MAC: for a client whose DUID tells no MAC (DUID-EN,
	// DUID-UUID). "": none.
	DUID    string       `json:"duid,omitempty"`
	Role    string       `json:"role,omitempty"`
	Comment string       `json:"comment,omitempty"`
	DHCP    *DHCPOptions `json:"dhcp_options,omitempty"` // override the subnet's
	// Boot names the boot profile it boots from the network (boot.profiles), BootNone
	// for none; "": its subnet's. With BootOnce it boots so until its boot script
	// reports that it booted (Booted: when, set by the write path, not by its owner).
	Boot     string `json:"boot,omitempty"`
	BootOnce bool   `json:"boot_once,omitempty"`
	// PiSerial is a Raspberry Pi's serial number (its last 8 hex digits, as the Pi
	// names its TFTP folder): the Pi that asks for that folder is this host.
	PiSerial string    `json:"pi_serial,omitempty"`
	Booted   time.Time `json:"booted,omitzero"`
	// SSH adds principals to the host's SSH certificates; nil: none beyond its names.
	SSH   *HostSSH `json:"ssh,omitempty"`
	Owner Owner    `json:"owner"`
}

// Addrs are h's addresses: its IP, and its IP6 when it has one.
func (h Host) Addrs() []netip.Addr {
	if h.IP6.IsValid() {
		return []netip.Addr{h.IP, h.IP6}
	}
	return []netip.Addr{h.IP}
}

// HostSSH is what a host's SSH certificates carry beyond its own names.
type HostSSH struct {
	Principals []string `yaml:"principals" json:"principals,omitempty"`
}

// SSHPrincipals are the names a host certificate of h carries, and no others: its
// short name, its name in domain, its extra principals and its address.
func (h Host) SSHPrincipals(domain Name) []string {
	fqdn := strings.TrimSuffix(string(HostFQDN(h.Name, domain)), ".")
	short, _, _ := strings.Cut(fqdn, ".")
	out := []string{short, fqdn}
	if h.SSH != nil {
		out = append(out, h.SSH.Principals...)
	}
	for _, a := range h.Addrs() {
		if a.IsValid() {
			out = append(out, a.String())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// BootNone is a host's Boot that says it boots from no profile, whatever its subnet's.
const BootNone = "none"

// BootProfile is the profile h boots from on sn, or "" for none: its own, else the
// subnet's; none once a host that boots once has booted.
func (h Host) BootProfile(sn Subnet) string {
	p := h.Boot
	if p == "" {
		p = sn.Boot
	}
	if p == BootNone || h.BootOnce && !h.Booted.IsZero() {
		return ""
	}
	return p
}

// Record is one DNS resource record kept in IPAM, beside the ones hosts imply.
type Record struct {
	Name  Name    `json:"name"`          // fully qualified, inside one of the site's zones
	Type  string  `json:"type"`          // one of RecordTypes
	Value string  `json:"value"`         // RDATA in presentation form, names fully qualified
	TTL   *uint32 `json:"ttl,omitempty"` // nil: the site's default (dns.ttl); 0 is a TTL of 0
	Owner Owner   `json:"owner"`
}

// ID names a record in the API and the store. It follows from the record's name,
// type and value, so the same record always has the same ID, and two records with
// the same data cannot both exist.
func (r Record) ID() string {
	sum := sha256.Sum256([]byte(string(r.Name) + " " + r.Type + " " + r.Value))
	return hex.EncodeToString(sum[:8])
}

// RecordTypes are the record types IPAM accepts.
var RecordTypes = []string{"A", "AAAA", "CNAME", "SRV", "TXT", "MX", "PTR"}

// InDHCPRange reports whether ip is in one of sn's DHCP ranges.
func InDHCPRange(sn Subnet, ip netip.Addr) bool {
	for _, r := range sn.Ranges {
		if r.Kind == RangeDHCP && r.Contains(ip) {
			return true
		}
	}
	return false
}
