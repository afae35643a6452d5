package site

import (
	"fmt"
	"net/netip"
)

// DHCPOptions change what DHCP replies carry, for a subnet or for one host; a host's
// override a subnet's, field by field. Unset fields keep infrad's defaults.
type DHCPOptions struct {
	DNS        []netip.Addr `json:"dns,omitempty"`           // default: infrad
	NTP        []netip.Addr `json:"ntp,omitempty"`           // default: infrad
	Search     []Name       `json:"domain_search,omitempty"` // default: the domain
	MTU        int          `json:"mtu,omitempty"`           // 0: not sent
	NextServer netip.Addr   `json:"next_server,omitzero"`    // PXE: the TFTP server
	BootFile   string       `json:"boot_file,omitempty"`     // PXE: the file to boot
}

// DHCPOptionsSpec is DHCPOptions as written.
type DHCPOptionsSpec struct {
	DNS        []string `yaml:"dns" json:"dns,omitempty"`
	NTP        []string `yaml:"ntp" json:"ntp,omitempty"`
	Search     []string `yaml:"domain_search" json:"domain_search,omitempty"`
	MTU        int      `yaml:"mtu" json:"mtu,omitempty"`
	NextServer string   `yaml:"next_server" json:"next_server,omitempty"`
	BootFile   string   `yaml:"boot_file" json:"boot_file,omitempty"`
}

// parse turns the spec into DHCPOptions, naming malformed fields under prefix.
func (s *DHCPOptionsSpec) parse(prefix string, errs *fieldErrors) *DHCPOptions {
	if s == nil {
		return nil
	}
	o := &DHCPOptions{MTU: s.MTU, BootFile: s.BootFile}
	for i, a := range s.DNS {
		o.DNS = append(o.DNS, errs.addr(fmt.Sprintf("%s.dns[%d]", prefix, i), a))
	}
	for i, a := range s.NTP {
		o.NTP = append(o.NTP, errs.addr(fmt.Sprintf("%s.ntp[%d]", prefix, i), a))
	}
	for i, d := range s.Search {
		name, err := ParseZone(d)
		if err != nil {
			errs.add(fmt.Sprintf("%s.domain_search[%d]", prefix, i), err.Error())
		}
		o.Search = append(o.Search, name)
	}
	if s.MTU != 0 && (s.MTU < 68 || s.MTU > 65535) {
		errs.add(prefix+".mtu", fmt.Sprintf("%d is not an MTU from 68 to 65535", s.MTU))
	}
	if s.NextServer != "" {
		o.NextServer = errs.addr(prefix+".next_server", s.NextServer)
	}
	if len(s.BootFile) > 127 {
		errs.add(prefix+".boot_file", "longer than the 127 bytes a DHCP reply holds")
	}
	return o
}

// Merge returns the options of o with those of over laid on top, field by field.
func (o DHCPOptions) Merge(over *DHCPOptions) DHCPOptions {
	if over == nil {
		return o
	}
	if len(over.DNS) > 0 {
		o.DNS = over.DNS
	}
	if len(over.NTP) > 0 {
		o.NTP = over.NTP
	}
	if len(over.Search) > 0 {
		o.Search = over.Search
	}
	if over.MTU != 0 {
		o.MTU = over.MTU
	}
	if over.NextServer.IsValid() {
		o.NextServer = over.NextServer
	}
	if over.BootFile != "" {
		o.BootFile = over.BootFile
	}
	return o
}
