package site

import (
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
)

// Specs are objects as people write them, in the site file or an API request: every
// field a string (or a number), so that a malformed value is reported with its field
// rather than failing the whole decode. Parse turns a spec into the typed object; the
// rules between objects are then Set.Problems. The site file and the API both go this
// way, so they accept and refuse exactly the same things.

// FieldError is a malformed field of one spec.
type FieldError struct {
	Field string // relative to the spec: "ip", "ranges[1].start"
	Msg   string
}

// SubnetSpec is a subnet as written.
type SubnetSpec struct {
	Name    string           `yaml:"name" json:"name"`
	CIDR    string           `yaml:"cidr" json:"cidr"`
	Gateway string           `yaml:"gateway" json:"gateway,omitempty"`
	Purpose string           `yaml:"purpose" json:"purpose,omitempty"` // "" is nodes
	Ranges  []RangeSpec      `yaml:"ranges" json:"ranges,omitempty"`
	Comment string           `yaml:"comment" json:"comment,omitempty"`
	DHCP    *DHCPOptionsSpec `yaml:"dhcp_options" json:"dhcp_options,omitempty"`
	Boot    string           `yaml:"boot" json:"boot,omitempty"`
	RA      *SubnetRA        `yaml:"ra" json:"ra,omitempty"`
	DHCP6   string           `yaml:"dhcp6" json:"dhcp6,omitempty"`
	// Delegate is the pool DHCPv6 delegates prefixes from (IA_PD).
	Delegate *DelegationSpec `yaml:"delegate" json:"delegate,omitempty"`
}

// DelegationSpec is a prefix delegation pool as written: {prefix: "fd00:100::/48",
// length: 56} delegates the /56s of fd00:100::/48.
type DelegationSpec struct {
	Prefix string `yaml:"prefix" json:"prefix"`
	Length int    `yaml:"length" json:"length"`
}

// RangeSpec is a range as written.
type RangeSpec struct {
	Kind  string `yaml:"kind" json:"kind"`
	Name  string `yaml:"name" json:"name,omitempty"`
	Start string `yaml:"start" json:"start"`
	End   string `yaml:"end" json:"end"`
}

// HostSpec is a host as written.
type HostSpec struct {
	Name     string           `yaml:"name" json:"name"`
	IP       string           `yaml:"ip" json:"ip"`
	IP6      string           `yaml:"ip6" json:"ip6,omitempty"`
	MAC      string           `yaml:"mac" json:"mac,omitempty"`
	DUID     string           `yaml:"duid" json:"duid,omitempty"`
	Role     string           `yaml:"role" json:"role,omitempty"`
	Comment  string           `yaml:"comment" json:"comment,omitempty"`
	DHCP     *DHCPOptionsSpec `yaml:"dhcp_options" json:"dhcp_options,omitempty"`
	Boot     string           `yaml:"boot" json:"boot,omitempty"`
	BootOnce bool             `yaml:"boot_once" json:"boot_once,omitempty"`
	PiSerial string           `yaml:"pi_serial" json:"pi_serial,omitempty"`
	SSH      *HostSSH         `yaml:"ssh" json:"ssh,omitempty"`
}

// RecordSpec is a DNS record as written: Name relative to the domain ("api", "@") or
// absolute with a trailing dot.
type RecordSpec struct {
	Name  string `yaml:"name" json:"name"`
	Type  string `yaml:"type" json:"type"`
	Value string `yaml:"value" json:"value"`
	TTL   *int   `yaml:"ttl" json:"ttl,omitempty"`
}

// Parse turns the spec into a Subnet. Its rules (a gateway inside, ranges that do
// not overlap, ...) are checked by Set.Problems.
func (s SubnetSpec) Parse() (Subnet, []FieldError) {
	var errs fieldErrors
	sn := Subnet{Name: s.Name, Purpose: Purpose(s.Purpose), Comment: s.Comment, Boot: s.Boot, RA: s.RA, DHCP6: s.DHCP6}
	if sn.Purpose == "" {
		sn.Purpose = PurposeNodes
	}
	if s.CIDR == "" {
		errs.add("cidr", "a subnet needs a cidr, such as 10.0.40.0/24")
	} else if p, err := ParseCIDR(s.CIDR); err != nil {
		errs.add("cidr", err.Error())
	} else {
		sn.CIDR = p
	}
	if s.Gateway != "" {
		sn.Gateway = errs.addr("gateway", s.Gateway)
	}
	sn.DHCP = s.DHCP.parse("dhcp_options", &errs)
	if d := s.Delegate; d != nil {
		sn.Delegate = &Delegation{Length: d.Length}
		if p, err := ParseCIDR(d.Prefix); err != nil {
			errs.add("delegate.prefix", err.Error())
		} else {
			sn.Delegate.Prefix = p
		}
	}
	for i, r := range s.Ranges {
		at := fmt.Sprintf("ranges[%d]", i)
		sn.Ranges = append(sn.Ranges, Range{
			Kind:  RangeKind(r.Kind),
			Name:  r.Name,
			Start: errs.requiredAddr(at+".start", r.Start),
			End:   errs.requiredAddr(at+".end", r.End),
		})
	}
	return sn, errs
}

// Parse turns the spec into a Host; the name is folded to lower case.
func (s HostSpec) Parse() (Host, []FieldError) {
	var errs fieldErrors
	h := Host{Name: strings.ToLower(s.Name), Role: s.Role, Comment: s.Comment, Boot: s.Boot, BootOnce: s.BootOnce, PiSerial: strings.ToLower(s.PiSerial)}
	if s.SSH != nil && len(s.SSH.Principals) > 0 {
		h.SSH = &HostSSH{Principals: slices.Clone(s.SSH.Principals)}
	}
	h.IP = errs.requiredAddr("ip", s.IP)
	if s.DUID != "" {
		if d, err := ParseDUID(s.DUID); err != nil {
			errs.add("duid", err.Error())
		} else {
			h.DUID = d
		}
	}
	if s.IP6 != "" {
		h.IP6 = errs.addr("ip6", s.IP6)
	}
	h.DHCP = s.DHCP.parse("dhcp_options", &errs)
	if s.MAC != "" {
		mac, err := ParseMAC(s.MAC)
		if err != nil {
			errs.add("mac", err.Error())
		}
		h.MAC = mac
	}
	return h, errs
}

// Parse turns the spec into a Record, names completed with origin (the site's domain).
// When the value is malformed, the record still carries its name and type, so that
// the rules on names can be checked too.
func (s RecordSpec) Parse(origin Name) (Record, []FieldError) {
	var errs fieldErrors
	name, err := ParseOwner(s.Name, origin)
	if err != nil {
		errs.add("name", err.Error())
		return Record{}, errs
	}
	var ttl *uint32
	if s.TTL != nil {
		if *s.TTL < 0 || *s.TTL > math.MaxInt32 {
			errs.add("ttl", fmt.Sprintf("%d is not a TTL from 0 to %d seconds", *s.TTL, math.MaxInt32))
		} else {
			t := uint32(*s.TTL)
			ttl = &t
		}
	}
	rec, err := ParseRecord(name, s.Type, s.Value, ttl, origin)
	if err != nil {
		field := "value"
		if !slices.Contains(RecordTypes, strings.ToUpper(s.Type)) {
			field = "type"
		}
		errs.add(field, err.Error())
		return Record{Name: name, Type: strings.ToUpper(s.Type), Value: s.Value, TTL: ttl}, errs
	}
	return rec, errs
}

// ParseCIDR parses a network such as 10.0.40.0/24, refusing one with host bits set.
func ParseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR, such as 10.0.40.0/24", s)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set: did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// ParseDUID parses a DHCPv6 client's DUID (RFC 8415 §11) written as hex bytes, with
// or without colons ("00:03:00:01:52:54:00:00:40:10", "000300015254..."), into
// lower-case hex without them.
func ParseDUID(s string) (string, error) {
	raw, err := hex.DecodeString(strings.ReplaceAll(strings.ToLower(s), ":", ""))
	if err != nil || len(raw) < 3 || len(raw) > 130 {
		return "", fmt.Errorf("%q is not a DUID: 3 to 130 bytes in hex, such as 00:03:00:01:52:54:00:00:40:10", s)
	}
	return hex.EncodeToString(raw), nil
}

// ParseAddr parses an IP address without a zone; IPv4-mapped IPv6 becomes IPv4.
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a.Unmap(), nil
}

type fieldErrors []FieldError

func (e *fieldErrors) add(field, msg string) { *e = append(*e, FieldError{Field: field, Msg: msg}) }

func (e *fieldErrors) addr(field, s string) netip.Addr {
	a, err := ParseAddr(s)
	if err != nil {
		e.add(field, err.Error())
	}
	return a
}

func (e *fieldErrors) requiredAddr(field, s string) netip.Addr {
	if s == "" {
		e.add(field, "an address is required here")
		return netip.Addr{}
	}
	return e.addr(field, s)
}
