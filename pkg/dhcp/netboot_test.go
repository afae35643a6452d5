package dhcp

import (
	"bytes"
	"context"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// bootsOnly is a boot service for which only the machines in profiles boot.
type bootsOnly map[site.MAC]string

func (b bootsOnly) BootsFrom(_ *ipam.Model, mac site.MAC, _ site.Subnet) string { return b[mac] }
func (b bootsOnly) Endpoint(local netip.Addr) string                            { return "http://" + local.String() + ":8081" }
func (b bootsOnly) Serving() bool                                               { return len(b) > 0 }
func (b bootsOnly) Profile(name string) (site.BootProfile, bool) {
	if name == "pi4" {
		return site.BootProfile{Name: name, Pi: "pi4"}, true
	}
	return site.BootProfile{Name: name, Kernel: "k"}, true
}

func TestNetbootReplies(t *testing.T) {
	s, l := newService(t)
	s.boot = bootsOnly{site.MAC(mac(1)): "debian", site.MAC(mac(2)): "debian", site.MAC(mac(4)): "pi4"}
	vendor := func(v string) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptClassIdentifier(v)) }
	arch := func(a iana.Arch) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptClientArch(a)) }
	ipxeClass := dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE"))
	tests := []struct {
		name           string
		client         int
		mods           []dhcpv4.Modifier
		file, next, vc string
	}{
		{"BIOS PXE firmware takes undionly.kpxe from this box", 1, []dhcpv4.Modifier{vendor("PXEClient:Arch:00000:UNDI:002001")}, "undionly.kpxe", "10.77.0.1", "PXEClient"},
		{"x86-64 UEFI PXE takes ipxe.efi", 1, []dhcpv4.Modifier{vendor("PXEClient:Arch:00007:UNDI:003016"), arch(iana.EFI_X86_64)}, "ipxe.efi", "10.77.0.1", "PXEClient"},
		{"arm64 UEFI PXE takes the arm64 build", 2, []dhcpv4.Modifier{vendor("PXEClient:Arch:00011:UNDI:003000"), arch(iana.EFI_ARM64)}, "ipxe-arm64.efi", "10.77.0.1", "PXEClient"},
		{"UEFI HTTP boot takes ipxe.efi by URL, HTTPClient echoed", 1, []dhcpv4.Modifier{vendor("HTTPClient:Arch:00016:UNDI:003001"), arch(iana.EFI_X86_64_HTTP)}, "http://10.77.0.1:8081/files/ipxe.efi", "", "HTTPClient"},
		{"iPXE takes its script, which ends the chain", 1, []dhcpv4.Modifier{vendor("PXEClient:Arch:00000:UNDI:002001"), ipxeClass}, "http://10.77.0.1:8081/ipxe/52-54-00-99-00-01", "", ""},
		{"32-bit UEFI gets nothing infrad has", 1, []dhcpv4.Modifier{vendor("PXEClient:Arch:00006:UNDI:003016"), arch(iana.EFI_IA32)}, "", "", ""},
		{"a machine that boots from no profile gets no boot options", 3, []dhcpv4.Modifier{vendor("PXEClient:Arch:00000:UNDI:002001")}, "", "", ""},
		{"a client that is not booting gets none", 1, nil, "", "", ""},
		{"a Raspberry Pi gets next-server and its option 43, no file", 4, []dhcpv4.Modifier{vendor("PXEClient:Arch:00000:UNDI:002001")}, "", "10.77.0.1", "PXEClient"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			offer, _ := s.handle(context.Background(), l, message(t, mac(tc.client), dhcpv4.MessageTypeDiscover, tc.mods...))
			if offer == nil {
				t.Fatal("no offer")
			}
			next := ""
			if a := addr(offer.ServerIPAddr); a.IsValid() && !a.IsUnspecified() {
				next = a.String()
			}
			if offer.BootFileName != tc.file || next != tc.next || string(offer.Options.Get(dhcpv4.OptionClassIdentifier)) != tc.vc {
				t.Errorf("got file %q, next-server %q, vendor class %q; want %q, %q, %q", offer.BootFileName, next, offer.Options.Get(dhcpv4.OptionClassIdentifier), tc.file, tc.next, tc.vc)
			}
			if got := string(offer.Options.Get(dhcpv4.OptionBootfileName)); got != tc.file {
				t.Errorf("option 67: got %q, want %q", got, tc.file)
			}
			o43, use := offer.Options[dhcpv4.OptionVendorSpecificInformation.Code()]
			if use != (tc.vc == "PXEClient") {
				t.Errorf("option 43 (PXE discovery control): got %v, want it with PXEClient only", use)
			}
			if pi := bytes.Contains(o43, []byte("Raspberry Pi Boot")); pi != (tc.client == 4) {
				t.Errorf("option 43 %q: Raspberry Pi Boot there %v, want it for the Pi only", o43, pi)
			}
		})
	}
}

func TestProxyDHCPGivesNoAddress(t *testing.T) {
	s, l := newService(t)
	s.boot = bootsOnly{site.MAC(mac(1)): "debian", site.MAC(mac(4)): "pi4"}
	st := *s.settings.Load()
	st.proxy = true
	s.settings.Store(&st)
	pxe := dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001"))
	uuid := dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}))

	offer, _ := s.handle(context.Background(), l, message(t, mac(1), dhcpv4.MessageTypeDiscover, pxe, uuid))
	if offer == nil || typeOf(offer) != dhcpv4.MessageTypeOffer {
		t.Fatalf("a booting machine's DISCOVER: got %v, want a proxy OFFER", offer)
	}
	if a := addr(offer.YourIPAddr); a.IsValid() && !a.IsUnspecified() || offer.BootFileName != "undionly.kpxe" ||
		string(offer.Options.Get(dhcpv4.OptionClassIdentifier)) != "PXEClient" || len(offer.Options.Get(dhcpv4.OptionClientMachineIdentifier)) != 17 ||
		offer.Options.Get(dhcpv4.OptionIPAddressLeaseTime) != nil || offer.Options.Get(dhcpv4.OptionSubnetMask) != nil {
		t.Errorf("the proxy OFFER: got %v; want no address, no lease, undionly.kpxe, PXEClient and option 97 echoed", offer)
	}
	// A Raspberry Pi beside the router's DHCP keeps the option 43 its bootloader looks for.
	if pi, _ := s.handle(context.Background(), l, message(t, mac(4), dhcpv4.MessageTypeDiscover, pxe)); pi == nil ||
		!bytes.Contains(pi.Options.Get(dhcpv4.OptionVendorSpecificInformation), []byte("Raspberry Pi Boot")) {
		t.Errorf("a Pi's proxy OFFER: got %v, want its option 43", pi)
	}
	if got, _ := s.handle(context.Background(), l, message(t, mac(2), dhcpv4.MessageTypeDiscover, pxe)); got != nil {
		t.Errorf("a machine that boots from no profile: got %v, want silence (the site's server answers it)", got)
	}
	if got, _ := s.handle(context.Background(), l, message(t, mac(1), dhcpv4.MessageTypeDiscover)); got != nil {
		t.Errorf("a client that is not booting: got %v, want silence", got)
	}
	// Its REQUEST to the site's server is not ours; on port 4011 it is.
	req := message(t, mac(1), dhcpv4.MessageTypeRequest, pxe, requested("10.77.0.150"), serverID("10.77.0.254"))
	if got, _ := s.handle(context.Background(), l, req); got != nil {
		t.Errorf("a REQUEST to the site's server: got %v, want silence", got)
	}
	bootServer := &link{name: l.name, addr: l.addr, bootServer: true}
	req = message(t, mac(1), dhcpv4.MessageTypeRequest, pxe)
	req.ClientIPAddr = []byte{10, 77, 0, 150}
	ack, _ := s.handle(context.Background(), bootServer, req)
	if ack == nil || typeOf(ack) != dhcpv4.MessageTypeAck || ack.BootFileName != "undionly.kpxe" || addr(ack.ServerIPAddr) != l.addr {
		t.Fatalf("a REQUEST on port 4011: got %v, want an ACK naming undionly.kpxe and this box as next-server", ack)
	}
	if ls := s.ipam.Model().Leases(); len(ls) != 0 {
		t.Errorf("a proxy committed leases: %v", ls)
	}
}
