package dhcp6

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/pkg/boot"
	"github.com/infrad/infrad/pkg/site"
)

const testSite = `domain: lab.test
dns: {listen: ["[::]:53"]}
ntp: {listen: ["[::]:123"]}
subnets:
  - {name: lab6, cidr: "fd00:77::/64", dhcp6: stateful}
hosts:
  - {name: cp01, ip: "fd00:77::10", mac: "52:54:00:77:00:10"}
  - {name: cp02, ip: "fd00:77::11", duid: "00:02:00:00:00:01:02"}
`

var (
	own      = []netip.Addr{netip.MustParseAddr("fd00:77::1")}
	duid     = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	reserved = net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 0x10}
)

func newService(t testing.TB) (*Service, site.Subnet) {
	t.Helper()
	m, cfg := sitetest.IPAM(t, []byte(testSite))
	sn, _ := m.Model().Subnet("lab6")
	return New(Options{Site: cfg, IPAM: m}), sn
}

func solicit(t *testing.T, mac net.HardwareAddr) *dhcpv6.Message {
	t.Helper()
	m, err := dhcpv6.NewSolicit(mac)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReservedAndNot: the reserved MAC gets its host's address, by its DUID or by its
// link-local address's EUI-64; another gets NoAddrsAvail, and the options either way.
func TestReservedAndNot(t *testing.T) {
	s, sn := newService(t)
	address := func(m *dhcpv6.Message, from netip.Addr) (string, *dhcpv6.Message) {
		reply, _ := s.reply(t.Context(), sn, own, duid, from, site.MAC{}, m)
		if reply == nil || reply.Type() != dhcpv6.MessageTypeAdvertise {
			t.Fatalf("no advertise: %v", reply)
		}
		if len(reply.Options.DNS()) != 1 || !reply.Options.DNS()[0].Equal(net.ParseIP("fd00:77::1")) {
			t.Errorf("DNS: %v", reply.Options.DNS())
		}
		ia := reply.Options.OneIANA()
		if ia == nil {
			t.Fatal("no IA_NA")
		}
		if a := ia.Options.OneAddress(); a != nil {
			return a.IPv6Addr.String(), reply
		}
		return ia.Options.Status().StatusCode.String(), reply
	}
	if got, _ := address(solicit(t, reserved), netip.Addr{}); got != "fd00:77::10" {
		t.Errorf("the reserved MAC's DUID: got %s", got)
	}
	byEUI := solicit(t, reserved)
	byEUI.UpdateOption(dhcpv6.OptClientID(&dhcpv6.DUIDEN{EnterpriseNumber: 1, EnterpriseIdentifier: []byte{1}}))
	if got, _ := address(byEUI, netip.MustParseAddr("fe80::5054:ff:fe77:10")); got != "fd00:77::10" {
		t.Errorf("the reserved MAC's link-local EUI-64: got %s", got)
	}
	byDUID := solicit(t, net.HardwareAddr{2, 2, 2, 2, 2, 3})
	byDUID.UpdateOption(dhcpv6.OptClientID(&dhcpv6.DUIDEN{EnterpriseNumber: 1, EnterpriseIdentifier: []byte{2}}))
	if got, _ := address(byDUID, netip.Addr{}); got != "fd00:77::11" {
		t.Errorf("the DUID reserved for cp02: got %s", got)
	}
	if got, _ := address(solicit(t, net.HardwareAddr{2, 2, 2, 2, 2, 2}), netip.Addr{}); got != iana.StatusNoAddrsAvail.String() {
		t.Errorf("a MAC with no reservation: got %s, want NoAddrsAvail", got)
	}
	other := solicit(t, reserved)
	other.AddOption(dhcpv6.OptServerID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{9, 9, 9, 9, 9, 9}}))
	if reply, _ := s.reply(t.Context(), sn, own, duid, netip.Addr{}, site.MAC{}, other); reply != nil {
		t.Errorf("a message for another server was answered: %v", reply)
	}
}

// TestRelayed: a relayed Solicit is answered inside a Relay-Reply through the relay,
// for the subnet of the relay's link address, with the MAC the relay gives (option
// 79) when the client's DUID has none.
func TestRelayed(t *testing.T) {
	s, _ := newService(t)
	m := solicit(t, reserved)
	m.UpdateOption(dhcpv6.OptClientID(&dhcpv6.DUIDEN{EnterpriseNumber: 1, EnterpriseIdentifier: []byte{1}}))
	relay, err := dhcpv6.EncapsulateRelay(m, dhcpv6.MessageTypeRelayForward, net.ParseIP("fd00:77::fe"), net.ParseIP("fe80::99"))
	if err != nil {
		t.Fatal(err)
	}
	relay.AddOption(dhcpv6.OptClientLinkLayerAddress(iana.HWTypeEthernet, reserved))
	relay.AddOption(dhcpv6.OptInterfaceID([]byte("r1")))
	out, typ, gave := s.relayed(t.Context(), relay, own, duid)
	if out == nil || typ != dhcpv6.MessageTypeSolicit || gave != "address" {
		t.Fatalf("got %v %s %s", out, typ, gave)
	}
	repl, ok := out.(*dhcpv6.RelayMessage)
	if !ok || repl.Type() != dhcpv6.MessageTypeRelayReply || string(repl.Options.InterfaceID()) != "r1" {
		t.Fatalf("not a Relay-Reply with the interface-id echoed: %v", out)
	}
	inner, err := repl.GetInnerMessage()
	if err != nil || inner.Options.OneIANA().Options.OneAddress().IPv6Addr.String() != "fd00:77::10" {
		t.Errorf("the relayed answer: %v %v", inner, err)
	}
	elsewhere, _ := dhcpv6.EncapsulateRelay(m, dhcpv6.MessageTypeRelayForward, net.ParseIP("fd00:99::1"), net.ParseIP("fe80::99"))
	if out, _, _ := s.relayed(t.Context(), elsewhere, own, duid); out != nil {
		t.Errorf("a relay on a link of no DHCPv6 subnet was answered: %v", out)
	}
}

// FuzzReply: whatever arrives, parsed or not, is answered or dropped without harm.
func FuzzReply(f *testing.F) {
	m, _ := dhcpv6.NewSolicit(reserved)
	f.Add(m.ToBytes())
	f.Add([]byte{11, 0, 0, 1})                // an Information-request with no options
	f.Add([]byte{12, 0, 0, 0, 0, 0, 0, 0, 0}) // a relay's
	s, sn := newService(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if msg, err := dhcpv6.MessageFromBytes(b); err == nil {
			if reply, _ := s.reply(t.Context(), sn, own, duid, netip.MustParseAddr("fe80::1"), site.MAC{}, msg); reply != nil {
				reply.ToBytes()
			}
		}
		if in, err := dhcpv6.FromBytes(b); err == nil {
			if relay, ok := in.(*dhcpv6.RelayMessage); ok {
				if out, _, _ := s.relayed(t.Context(), relay, own, duid); out != nil {
					out.ToBytes()
				}
			}
		}
	})
}

const bootSite = `domain: lab.test
dns: {listen: ["[::]:53"]}
boot:
  http_listen: "[::]:8081"
  profiles:
    - {name: debian, kernel: debian/vmlinuz}
subnets:
  - {name: lab6, cidr: "fd00:77::/64", dhcp6: stateful}
hosts:
  - {name: cp01, ip: "fd00:77::10", mac: "52:54:00:77:00:10", boot: debian}
  - {name: cp02, ip: "fd00:77::11", mac: "52:54:00:77:00:11"}
`

// TestNetbootURL: a machine that boots from a profile is given its boot file's URL
// (option 59) on the boot endpoint's IPv6 address: iPXE its script, UEFI HTTP boot the
// iPXE binary of its architecture, with HTTPClient echoed. A machine with no profile,
// and a client that is no boot firmware, get none; nor does anyone when the endpoint
// listens on IPv4 alone.
func TestNetbootURL(t *testing.T) {
	newBoot := func(yaml string) (*Service, site.Subnet) {
		m, cfg := sitetest.IPAM(t, []byte(yaml))
		sn, _ := m.Model().Subnet("lab6")
		return New(Options{Site: cfg, IPAM: m, Boot: boot.New(boot.Options{Site: cfg, IPAM: m, Registry: prometheus.NewRegistry()})}), sn
	}
	s, sn := newBoot(bootSite)
	ask := func(s *Service, mac net.HardwareAddr, mods ...dhcpv6.Modifier) (string, bool) {
		m := solicit(t, mac)
		for _, mod := range mods {
			mod(m)
		}
		reply, _ := s.reply(t.Context(), sn, own, duid, netip.Addr{}, site.MAC{}, m)
		url := ""
		if o := reply.GetOneOption(dhcpv6.OptionBootfileURL); o != nil {
			url = string(o.ToBytes())
		}
		return url, reply.Options.VendorClass(343) != nil
	}
	ipxe := dhcpv6.WithUserClass([]byte("iPXE"))
	httpBoot := func(d dhcpv6.DHCPv6) {
		d.AddOption(&dhcpv6.OptVendorClass{EnterpriseNumber: 343, Data: [][]byte{[]byte("HTTPClient:Arch:00016")}})
		d.AddOption(dhcpv6.OptClientArchType(iana.EFI_X86_64_HTTP))
	}
	cp01, cp02 := net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 0x10}, net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 0x11}
	for _, tc := range []struct {
		name      string
		s         *Service
		mac       net.HardwareAddr
		mods      []dhcpv6.Modifier
		url       string
		vendorEch bool
	}{
		{"iPXE", s, cp01, []dhcpv6.Modifier{ipxe}, "http://[fd00:77::1]:8081/ipxe/52-54-00-77-00-10", false},
		{"UEFI HTTP boot", s, cp01, []dhcpv6.Modifier{httpBoot}, "http://[fd00:77::1]:8081/files/ipxe.efi", true},
		{"no profile", s, cp02, []dhcpv6.Modifier{ipxe}, "", false},
		{"no boot firmware", s, cp01, nil, "", false},
	} {
		if url, echoed := ask(tc.s, tc.mac, tc.mods...); url != tc.url || echoed != tc.vendorEch {
			t.Errorf("%s: got %q (HTTPClient echoed: %v), want %q (%v)", tc.name, url, echoed, tc.url, tc.vendorEch)
		}
	}
	s4, _ := newBoot(strings.Replace(bootSite, `"[::]:8081"`, `"0.0.0.0:8081"`, 1))
	if url, _ := ask(s4, cp01, ipxe); url != "" {
		t.Errorf("a boot endpoint on IPv4 alone: got %q, want none", url)
	}
}
