package dhcp

import (
	"bytes"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/infrad/infrad/pkg/boot"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// Booter is the boot service, as DHCP sees it: which profile a machine boots from,
// and where its endpoint is.
type Booter interface {
	Serving() bool                                                // the site has boot profiles
	BootsFrom(m *ipam.Model, mac site.MAC, sn site.Subnet) string // "": none
	Profile(name string) (site.BootProfile, bool)
	Endpoint(local netip.Addr) string // http://addr:port
}

// firmware is what a network boot client said of itself in its request.
type firmware int

const (
	notBooting firmware = iota
	pxe                 // PXE firmware (option 60 "PXEClient..."): takes an iPXE binary over TFTP
	httpBoot            // UEFI HTTP boot (option 60 "HTTPClient..."): takes an iPXE binary by URL
	ipxe                // iPXE itself (option 77 "iPXE", or its option 175): takes its script by URL
)

// firmwareOf reads what kind of network boot client m comes from, and its
// architecture (RFC 4578 option 93; 0, BIOS, when absent).
func firmwareOf(m *dhcpv4.DHCPv4) (firmware, iana.Arch) {
	var arch iana.Arch
	if archs := m.ClientArch(); len(archs) > 0 {
		arch = archs[0]
	}
	if m.Options.Has(dhcpv4.OptionEtherboot) || bytes.Contains(m.Options.Get(dhcpv4.OptionUserClassInformation), []byte("iPXE")) {
		return ipxe, arch
	}
	switch vc := m.Options.Get(dhcpv4.OptionClassIdentifier); {
	case bytes.HasPrefix(vc, []byte("HTTPClient")):
		return httpBoot, arch
	case bytes.HasPrefix(vc, []byte("PXEClient")):
		return pxe, arch
	}
	return notBooting, arch
}

// pxeUseFile is option 43 for PXE firmware: its sub-option 6 (PXE_DISCOVERY_CONTROL)
// with bit 3 set, "boot the file this reply names, without boot server discovery"
// (PXE 2.1, §2.4.2.1). UEFI firmware (EDK2's PXE) takes no offer without it.
var pxeUseFile = dhcpv4.OptionGeneric{Data: []byte{6, 1, 8, 255}}

// netboot points a network boot client whose machine boots from a profile at what
// it fetches next: PXE firmware at an iPXE binary over TFTP from this box (next-server
// and the file field), UEFI HTTP boot at that binary's URL (echoing "HTTPClient", as
// the firmware requires), iPXE at its script's URL, which ends the chain, and a
// Raspberry Pi (a machine whose profile is a pi folder) at this box's TFTP, with the
// option 43 its bootloader looks for. A client whose machine boots from no profile
// gets none of this, and false. infrad is this box's address as the client reaches it.
func (s *Service) netboot(r *request, resp *dhcpv4.DHCPv4, infrad netip.Addr) bool {
	if s.boot == nil || !s.boot.Serving() { // most replies: a site that boots nothing asks nothing
		return false
	}
	fw, arch := firmwareOf(r.DHCPv4)
	if fw == notBooting {
		return false
	}
	name := s.boot.BootsFrom(r.model, r.mac, r.sn)
	if name == "" {
		return false
	}
	if p, ok := s.boot.Profile(name); ok && p.Kind() == "pi" {
		if fw != pxe {
			return false
		}
		// A Raspberry Pi: its bootloader fetches <serial>/... over TFTP from next-server.
		resp.ServerIPAddr = infrad.AsSlice()
		resp.UpdateOption(dhcpv4.OptTFTPServerName(infrad.String()))
		resp.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient"))
		resp.UpdateOption(dhcpv4.Option{Code: dhcpv4.OptionVendorSpecificInformation, Value: dhcpv4.OptionGeneric{Data: boot.PiOption43}})
		s.metrics.netboot.WithLabelValues("pi").Inc()
		return true
	}
	endpoint := s.boot.Endpoint(infrad)
	switch fw {
	case ipxe:
		resp.BootFileName = endpoint + boot.ScriptPath + boot.MACPath(r.mac)
	case httpBoot:
		loader := boot.LoaderFor(arch)
		if loader == "" {
			return false
		}
		resp.BootFileName = endpoint + boot.FilesPath + loader
		resp.UpdateOption(dhcpv4.OptClassIdentifier("HTTPClient"))
	case pxe:
		loader := boot.LoaderFor(arch)
		if loader == "" {
			return false
		}
		resp.ServerIPAddr = infrad.AsSlice()
		resp.BootFileName = loader
		resp.UpdateOption(dhcpv4.OptTFTPServerName(infrad.String()))
		resp.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient"))
		resp.UpdateOption(dhcpv4.Option{Code: dhcpv4.OptionVendorSpecificInformation, Value: pxeUseFile})
	}
	resp.UpdateOption(dhcpv4.OptBootFileName(resp.BootFileName))
	s.metrics.netboot.WithLabelValues(fw.String()).Inc()
	return true
}

func (f firmware) String() string {
	switch f {
	case pxe:
		return "pxe"
	case httpBoot:
		return "http"
	case ipxe:
		return "ipxe"
	}
	return "none"
}
