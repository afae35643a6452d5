package dhcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/pkg/site"
)

const testSite = `domain: lab.test
dhcp: {lease_time: 1h}
subnets:
  - name: lab
    cidr: 10.77.0.0/24
    gateway: 10.77.0.254
    ranges:
      - {kind: dhcp, start: 10.77.0.100, end: 10.77.0.109}
  - name: far
    cidr: 10.88.0.0/24
    ranges:
      - {kind: dhcp, start: 10.88.0.100, end: 10.88.0.109}
hosts:
  - {name: cp01, ip: 10.77.0.10, mac: "52:54:00:77:00:10"}
`

// newService returns a Service on a fresh store, with no sockets: the
// tests call handle directly, as the server does for each packet.
func newService(t testing.TB) (*Service, *link) {
	return newServiceOn(t, testSite, "10.77.0.1")
}

// newServiceOn is newService for another site, its interface at addr.
func newServiceOn(t testing.TB, siteYAML, addr string) (*Service, *link) {
	t.Helper()
	m, cfg := sitetest.IPAM(t, []byte(siteYAML))
	s := New(Options{Site: cfg, IPAM: m, Registry: prometheus.NewRegistry()})
	return s, &link{name: "br0", addr: netip.MustParseAddr(addr)}
}

func mac(i int) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0x99, 0, byte(i)} }

func message(t *testing.T, hw net.HardwareAddr, typ dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(typ)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func requested(ip string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(ip)))
}

func serverID(ip string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP(ip)))
}

func hostname(name string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptHostName(name))
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// lease runs DISCOVER and REQUEST for hw and returns the address ACKed.
func lease(t *testing.T, s *Service, l *link, hw net.HardwareAddr, mods ...dhcpv4.Modifier) string {
	t.Helper()
	return exchange(t, s, l, hw, mods...).YourIPAddr.String()
}

// exchange runs DISCOVER and REQUEST for hw and returns the ACK.
func exchange(t *testing.T, s *Service, l *link, hw net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	offer, _ := s.handle(context.Background(), l, message(t, hw, dhcpv4.MessageTypeDiscover, mods...))
	if offer == nil {
		t.Fatalf("%s: no offer", hw)
	}
	ack, _ := s.handle(context.Background(), l, message(t, hw, dhcpv4.MessageTypeRequest, append(mods, requested(offer.YourIPAddr.String()), serverID(l.addr.String()))...))
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("%s: got %v, want an ACK", hw, ack)
	}
	return ack
}

func TestRequestsThatAreNAKed(t *testing.T) {
	s, l := newService(t)
	taken := lease(t, s, l, mac(1))
	tests := []struct {
		name string
		msg  *dhcpv4.DHCPv4
	}{
		{"another client's address", message(t, mac(2), dhcpv4.MessageTypeRequest, requested(taken))},
		{"an address of another network", message(t, mac(2), dhcpv4.MessageTypeRequest, requested("10.88.0.100"))},
		{"an address outside the pool", message(t, mac(2), dhcpv4.MessageTypeRequest, requested("10.77.0.50"))},
		{"a host's address, by another MAC", message(t, mac(2), dhcpv4.MessageTypeRequest, requested("10.77.0.10"))},
		{"a renewal of an address that is not its own", message(t, mac(2), dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(net.ParseIP(taken)))},
		{"a reserved client asking for a pool address", message(t, net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 0x10}, dhcpv4.MessageTypeRequest, requested("10.77.0.105"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, dst := s.handle(context.Background(), l, tc.msg)
			if resp == nil || resp.MessageType() != dhcpv4.MessageTypeNak {
				t.Fatalf("got %v, want a NAK", resp)
			}
			if !dst.IP.Equal(net.IPv4bcast) {
				t.Errorf("NAK sent to %s, want broadcast", dst)
			}
		})
	}
}

func TestRequestForAnotherServerIsIgnored(t *testing.T) {
	s, l := newService(t)
	offer, _ := s.handle(context.Background(), l, message(t, mac(1), dhcpv4.MessageTypeDiscover))
	resp, _ := s.handle(context.Background(), l, message(t, mac(1), dhcpv4.MessageTypeRequest, requested(offer.YourIPAddr.String()), serverID("10.77.0.2")))
	if resp != nil {
		t.Errorf("got %v, want silence: the client chose another server", resp.MessageType())
	}
}

func TestDeclineQuarantines(t *testing.T) {
	s, l := newService(t)
	ip := lease(t, s, l, mac(1))
	s.handle(context.Background(), l, message(t, mac(1), dhcpv4.MessageTypeDecline, requested(ip), serverID("10.77.0.1")))
	for i := 2; i < 12; i++ {
		offer, _ := s.handle(context.Background(), l, message(t, mac(i), dhcpv4.MessageTypeDiscover))
		if offer != nil && offer.YourIPAddr.String() == ip {
			t.Fatalf("the declined %s was offered again", ip)
		}
	}
	leases, _ := s.Leases()
	if len(leases) != 1 || !leases[0].Declined || !leases[0].MAC.IsZero() {
		t.Errorf("got %v, want one declined lease held by no one", leases)
	}
}

func TestReleaseFreesAndTheClientReturns(t *testing.T) {
	s, l := newService(t)
	first := lease(t, s, l, mac(1))
	s.handle(context.Background(), l, message(t, mac(1), dhcpv4.MessageTypeRelease, dhcpv4.WithClientIP(net.ParseIP(first)), serverID("10.77.0.1")))
	if leases, _ := s.Leases(); len(leases) != 0 {
		t.Fatalf("got %v after release, want none", leases)
	}
	lease(t, s, l, mac(2))
	if again := lease(t, s, l, mac(1)); again != first && again != "10.77.0.100" {
		t.Errorf("the returning client got %s, want its previous %s", again, first)
	}
}

func TestReservationWins(t *testing.T) {
	s, l := newService(t)
	hw := net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 0x10}
	offer, _ := s.handle(context.Background(), l, message(t, hw, dhcpv4.MessageTypeDiscover, requested("10.77.0.105")))
	if offer.YourIPAddr.String() != "10.77.0.10" {
		t.Errorf("got %s, want the host's 10.77.0.10", offer.YourIPAddr)
	}
}

func TestInform(t *testing.T) {
	s, l := newService(t)
	resp, dst := s.handle(context.Background(), l, message(t, mac(1), dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.ParseIP("10.77.0.50"))))
	if resp == nil || resp.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("got %v, want an ACK", resp)
	}
	if !resp.YourIPAddr.IsUnspecified() || resp.IPAddressLeaseTime(0) != 0 {
		t.Errorf("an INFORM gets options, not a lease: got yiaddr %s, lease time %s", resp.YourIPAddr, resp.IPAddressLeaseTime(0))
	}
	if dst.String() != "10.77.0.50:68" {
		t.Errorf("sent to %s, want the client's address", dst)
	}
	if len(resp.DNS()) == 0 || resp.Router()[0].String() != "10.77.0.254" {
		t.Errorf("got DNS %v, router %v", resp.DNS(), resp.Router())
	}
}

func TestRelayedRequest(t *testing.T) {
	s, l := newService(t)
	relay := dhcpv4.WithGatewayIP(net.ParseIP("10.88.0.1"))
	offer, dst := s.handle(context.Background(), l, message(t, mac(1), dhcpv4.MessageTypeDiscover, relay))
	if offer == nil || offer.YourIPAddr.String() != "10.88.0.100" {
		t.Fatalf("got %v, want an address of the relay's subnet", offer)
	}
	if dst.String() != "10.88.0.1:67" {
		t.Errorf("sent to %s, want the relay at 10.88.0.1:67", dst)
	}
	nothing, _ := s.handle(context.Background(), l, message(t, mac(2), dhcpv4.MessageTypeDiscover, dhcpv4.WithGatewayIP(net.ParseIP("192.168.9.1"))))
	if nothing != nil {
		t.Errorf("a relay on no subnet of ours got %v, want silence", nothing)
	}
}

// TestRelayedClientRenewsByUnicast: at T1 a relayed client unicasts its REQUEST to the
// server through the router, with its address in ciaddr and no giaddr (RFC 2131
// §4.3.2); the subnet is the one holding ciaddr, not the interface's, and the ACK goes
// to the client's address. A relayed NAK has the broadcast bit set, and is counted.
func TestRelayedClientRenewsByUnicast(t *testing.T) {
	s, l := newService(t)
	relay := dhcpv4.WithGatewayIP(net.ParseIP("10.88.0.1"))
	ip := lease(t, s, l, mac(3), relay)
	ack, dst := s.handle(context.Background(), l, message(t, mac(3), dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(net.ParseIP(ip))))
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || ack.YourIPAddr.String() != ip {
		t.Fatalf("the unicast renewal of %s got %v, want an ACK", ip, ack)
	}
	if dst.String() != ip+":68" {
		t.Errorf("the ACK went to %s, want the client at %s:68", dst, ip)
	}
	inform, dst := s.handle(context.Background(), l, message(t, mac(3), dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.ParseIP(ip))))
	if inform == nil || inform.MessageType() != dhcpv4.MessageTypeAck || dst.String() != ip+":68" {
		t.Errorf("the unicast INFORM of %s got %v to %s, want an ACK to the client", ip, inform, dst)
	}

	nak, dst := s.handle(context.Background(), l, message(t, mac(4), dhcpv4.MessageTypeRequest, relay, requested("10.77.0.100")))
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("a relayed REQUEST for another network's address got %v, want a NAK", nak)
	}
	if !nak.IsBroadcast() || dst.String() != "10.88.0.1:67" {
		t.Errorf("the relayed NAK: broadcast bit %v, sent to %s; want the bit set, sent to the relay", nak.IsBroadcast(), dst)
	}
	if n := testutil.ToFloat64(s.metrics.naks.WithLabelValues(nakWrongNetwork)); n != 1 {
		t.Errorf("infrad_dhcp_naks_total{reason=wrong_network} = %v, want 1", n)
	}
}

func TestConcurrentClientsNeverShareAnAddress(t *testing.T) {
	s, l := newService(t)
	const n = 10 // the pool
	ips := make([]string, n+5)
	var wg sync.WaitGroup
	for i := range n + 5 {
		wg.Go(func() {
			hw := mac(i)
			offer, _ := s.handle(context.Background(), l, message(t, hw, dhcpv4.MessageTypeDiscover))
			if offer == nil {
				return // exhausted
			}
			ack, _ := s.handle(context.Background(), l, message(t, hw, dhcpv4.MessageTypeRequest, requested(offer.YourIPAddr.String()), serverID("10.77.0.1")))
			if ack != nil && ack.MessageType() == dhcpv4.MessageTypeAck {
				ips[i] = ack.YourIPAddr.String()
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for i, ip := range ips {
		if ip == "" {
			continue
		}
		if j, dup := seen[ip]; dup {
			t.Errorf("clients %d and %d both got %s", i, j, ip)
		}
		seen[ip] = i
	}
	if len(seen) != n {
		t.Errorf("got %d leases, want the whole pool of %d", len(seen), n)
	}
}

func TestSanitizeHostname(t *testing.T) {
	for in, want := range map[string]string{
		"Laptop_01":                 "laptop-01",
		"-weird name!-":             "weird-name",
		"ünïcødé":                   "ncd",
		"":                          "",
		fmt.Sprint(make([]int, 30)): "0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0-0",
	} {
		if got := site.SanitizeHostname(in); got != want {
			t.Errorf("site.SanitizeHostname(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestStarvationLimits(t *testing.T) {
	t.Run("per MAC", func(t *testing.T) {
		s, l := newServiceOn(t, strings.Replace(testSite, "dhcp: {lease_time: 1h}", "dhcp: {lease_time: 1h, rate_limit: 2}", 1), "10.77.0.1")
		answered := 0
		for range 10 {
			if resp, _ := s.handle(context.Background(), l, message(t, mac(1), dhcpv4.MessageTypeDiscover)); resp != nil {
				answered++
			}
		}
		if answered != 4 {
			t.Errorf("ten DISCOVERs from one MAC at 2/s (burst 4): got %d answered, want 4", answered)
		}
		if resp, _ := s.handle(context.Background(), l, message(t, mac(2), dhcpv4.MessageTypeDiscover)); resp == nil {
			t.Errorf("another client is held back by the first")
		}
	})
	t.Run("per relay", func(t *testing.T) {
		s, l := newServiceOn(t, strings.Replace(testSite, "dhcp: {lease_time: 1h}", "dhcp: {lease_time: 1h, relay_rate_limit: 3}", 1), "10.77.0.1")
		answered := 0
		for i := range 20 { // a starvation attack: a new MAC every time
			if resp, _ := s.handle(context.Background(), l, message(t, mac(i), dhcpv4.MessageTypeDiscover, dhcpv4.WithGatewayIP(net.ParseIP("10.88.0.1")))); resp != nil {
				answered++
			}
		}
		if answered != 6 {
			t.Errorf("twenty DISCOVERs through one relay at 3/s (burst 6): got %d answered, want 6", answered)
		}
	})
}

// TestRacingRequestsForOneAddress is the promise "no address twice", raced: in each
// round, two to six fresh clients REQUEST the same free address at the same moment,
// rebooting with it (INIT-REBOOT) or selecting it after each got an offer of its own
// (SELECTING, with our server identifier). At most one gets an ACK, and that one holds
// the lease.
func TestRacingRequestsForOneAddress(t *testing.T) {
	s, l := newService(t)
	rounds := 1000
	if testing.Short() {
		rounds = 100
	}
	for round := range rounds {
		clients := 2 + round%5
		target := fmt.Sprintf("10.77.0.%d", 100+round%10)
		selecting := round%2 == 1
		var hws []net.HardwareAddr
		for c := range clients {
			hw := net.HardwareAddr{0x52, 0x54, byte(round >> 8), byte(round), 0, byte(c)}
			hws = append(hws, hw)
			if selecting {
				s.handle(context.Background(), l, message(t, hw, dhcpv4.MessageTypeDiscover))
			}
		}
		acks := make([]bool, clients)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for c, hw := range hws {
			mods := []dhcpv4.Modifier{requested(target)}
			if selecting {
				mods = append(mods, serverID("10.77.0.1"))
			}
			msg := message(t, hw, dhcpv4.MessageTypeRequest, mods...)
			wg.Go(func() {
				<-start
				resp, _ := s.handle(context.Background(), l, msg)
				acks[c] = resp != nil && resp.MessageType() == dhcpv4.MessageTypeAck
			})
		}
		close(start)
		wg.Wait()
		winners := 0
		for c, ok := range acks {
			if !ok {
				continue
			}
			winners++
			lease, held := s.ipam.Model().Lease(mustAddr(target))
			if !held || lease.MAC.String() != hws[c].String() {
				t.Fatalf("round %d: %s got the ACK for %s, the lease is %+v", round, hws[c], target, lease)
			}
		}
		if winners > 1 {
			t.Fatalf("round %d: %d clients got an ACK for %s", round, winners, target)
		}
		// Free the address for the next round that wants it.
		if lease, held := s.ipam.Model().Lease(mustAddr(target)); held {
			s.handle(context.Background(), l, message(t, net.HardwareAddr(lease.MAC[:]), dhcpv4.MessageTypeRelease, dhcpv4.WithClientIP(net.ParseIP(target)), serverID("10.77.0.1")))
		}
	}
}

// TestBurstOfDiscoversNeverDoubleBooks: many clients DISCOVER at once, then all
// REQUEST what they were offered: no address is offered to two clients that then both
// get it.
func TestBurstOfDiscoversNeverDoubleBooks(t *testing.T) {
	s, l := newService(t)
	for round := range 50 {
		offers := make([]string, 12)
		var wg sync.WaitGroup
		for c := range offers {
			wg.Go(func() {
				hw := net.HardwareAddr{0x52, 0x55, 0, byte(round), 0, byte(c)}
				if o, _ := s.handle(context.Background(), l, message(t, hw, dhcpv4.MessageTypeDiscover)); o != nil {
					offers[c] = o.YourIPAddr.String()
				}
			})
		}
		wg.Wait()
		acked := make([]string, len(offers))
		for c, ip := range offers {
			if ip == "" {
				continue
			}
			hw := net.HardwareAddr{0x52, 0x55, 0, byte(round), 0, byte(c)}
			msg := message(t, hw, dhcpv4.MessageTypeRequest, requested(ip), serverID("10.77.0.1"))
			wg.Go(func() {
				if ack, _ := s.handle(context.Background(), l, msg); ack != nil && ack.MessageType() == dhcpv4.MessageTypeAck {
					acked[c] = ip
				}
			})
		}
		wg.Wait()
		seen := map[string]bool{}
		for _, ip := range acked {
			if ip != "" && seen[ip] {
				t.Fatalf("round %d: %s ACKed to two clients", round, ip)
			}
			seen[ip] = true
		}
		for _, lease := range s.ipam.Leases() {
			s.handle(context.Background(), l, message(t, net.HardwareAddr(lease.MAC[:]), dhcpv4.MessageTypeRelease, dhcpv4.WithClientIP(lease.IP.AsSlice()), serverID("10.77.0.1")))
		}
	}
}

// TestAdvertisedServers: option 6 (DNS) and option 42 (NTP) name dns.advertise, where
// infrad serves both, and the interface's address without it.
func TestAdvertisedServers(t *testing.T) {
	for _, tc := range []struct{ extra, want string }{
		{"", "10.77.0.1"},
		{"dns: {advertise: 10.77.0.2}\n", "10.77.0.2"},
	} {
		s, l := newServiceOn(t, tc.extra+testSite, "10.77.0.1")
		resp, _ := s.handle(context.Background(), l, message(t, mac(1), dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.ParseIP("10.77.0.50"))))
		if resp == nil {
			t.Fatal("no answer to an INFORM")
		}
		if dns, ntp := resp.DNS(), resp.NTPServers(); len(dns) != 1 || dns[0].String() != tc.want || len(ntp) != 1 || ntp[0].String() != tc.want {
			t.Errorf("%q: DNS %v, NTP %v; want %s for both", tc.extra, dns, ntp, tc.want)
		}
	}
}

// The options a subnet's replies share follow a reload of the settings, and a host
// with options of its own gets them, not the subnet's.
func TestSharedOptionsFollowTheSite(t *testing.T) {
	s, l := newServiceOn(t, testSite, "10.77.0.1")
	inform := func(hw net.HardwareAddr) []net.IP {
		resp, _ := s.handle(context.Background(), l, message(t, hw, dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.ParseIP("10.77.0.50"))))
		if resp == nil {
			t.Fatal("no answer to an INFORM")
		}
		return resp.DNS()
	}
	if dns := inform(mac(1)); len(dns) != 1 || dns[0].String() != "10.77.0.1" {
		t.Fatalf("DNS %v, want the interface's address", dns)
	}
	_, cfg := sitetest.IPAM(t, []byte("dns: {advertise: 10.77.0.2}\n"+testSite))
	s.setSite(cfg)
	if dns := inform(mac(1)); len(dns) != 1 || dns[0].String() != "10.77.0.2" {
		t.Errorf("after a reload: DNS %v, want dns.advertise's 10.77.0.2", dns)
	}
	if _, err := s.ipam.CreateHost(context.Background(), site.HostSpec{Name: "pxe", IP: "10.77.0.60", MAC: mac(7).String(), DHCP: &site.DHCPOptionsSpec{DNS: []string{"10.77.0.9"}}}); err != nil {
		t.Fatal(err)
	}
	if dns := inform(mac(7)); len(dns) != 1 || dns[0].String() != "10.77.0.9" {
		t.Errorf("a host with its own DNS got %v, want 10.77.0.9", dns)
	}
	if dns := inform(mac(1)); len(dns) != 1 || dns[0].String() != "10.77.0.2" {
		t.Errorf("a client without a host of its own got %v after the host's reply, want 10.77.0.2", dns)
	}
}

// TestNamesInTheReply: a reserved client that asks for option 12 is told its host's
// name; a client that sends its FQDN (option 81) is answered (RFC 4702 §4) with the
// name DNS gives it, S set since infrad publishes the records, O when the client
// wanted to do so itself, in the client's encoding; a client whose name another holds
// is answered N and no name.
func TestNamesInTheReply(t *testing.T) {
	s, l := newService(t)
	ack := func(hw net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		t.Helper()
		return exchange(t, s, l, hw, mods...)
	}
	askName := dhcpv4.WithRequestedOptions(dhcpv4.OptionHostName)
	fqdn := func(flags byte, name []byte) dhcpv4.Modifier {
		return dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionFQDN, append([]byte{flags, 0, 0}, name...)))
	}
	reserved, _ := net.ParseMAC("52:54:00:77:00:10")
	if got := ack(reserved, askName, hostname("whatever")).HostName(); got != "cp01" {
		t.Errorf("the reserved client is told host name %q, want cp01", got)
	}
	// E set, S clear: the client leaves the A record to the server, in wire format.
	got := ack(mac(1), askName, fqdn(0x04, []byte("\x06laptop\x00"))).GetOneOption(dhcpv4.OptionFQDN)
	if want := append([]byte{0x04 | 0x01 | 0x02, 255, 255}, "\x06laptop\x03lab\x04test\x00"...); string(got) != string(want) {
		t.Errorf("option 81 to laptop: %q, want %q", got, want)
	}
	// E clear, S set: ASCII, and no override.
	got = ack(mac(2), fqdn(0x01, []byte("desk"))).GetOneOption(dhcpv4.OptionFQDN)
	if want := append([]byte{0x01, 255, 255}, "desk.lab.test"...); string(got) != string(want) {
		t.Errorf("option 81 to desk: %q, want %q", got, want)
	}
	// A client asking for the reserved host's name gets none: N.
	reply := ack(mac(3), askName, fqdn(0x00, []byte("cp01")))
	if got := reply.GetOneOption(dhcpv4.OptionFQDN); string(got) != string([]byte{0x08, 255, 255}) || reply.HostName() != "" {
		t.Errorf("a client asking for cp01's name: option 81 %q, option 12 %q; want N and no name", got, reply.HostName())
	}
}

// TestFailoverDropsNoLeasedClient: in a cluster the hash of a client's identifier
// chooses who answers it only while it has no lease. When the live nodes change and a
// client's share moves away from the node that granted its lease, that node still
// answers its renewal and applies its RELEASE; only a new client's DISCOVER goes to
// the node its share now names.
func TestFailoverDropsNoLeasedClient(t *testing.T) {
	s, l := newService(t)
	hw := mac(40)
	ip := lease(t, s, l, hw) // one node alone: every client is its
	// Two more nodes come up, and this client's share is another's.
	for place := range 3 {
		s.share = func() (int, int) { return place, 3 }
		if !s.mine(message(t, hw, dhcpv4.MessageTypeDiscover)) {
			break
		}
	}
	if s.mine(message(t, hw, dhcpv4.MessageTypeDiscover)) {
		t.Fatal("no place of three leaves this client to another node")
	}
	if offer, _ := s.handle(context.Background(), l, message(t, hw, dhcpv4.MessageTypeDiscover)); offer != nil {
		t.Errorf("a DISCOVER outside this node's share was answered")
	}
	renew := message(t, hw, dhcpv4.MessageTypeRequest, func(m *dhcpv4.DHCPv4) { m.ClientIPAddr = net.ParseIP(ip) })
	if ack, _ := s.handle(context.Background(), l, renew); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || ack.YourIPAddr.String() != ip {
		t.Errorf("the renewal of %s: got %v, want an ACK", ip, ack)
	}
	release := message(t, hw, dhcpv4.MessageTypeRelease, serverID(l.addr.String()), func(m *dhcpv4.DHCPv4) { m.ClientIPAddr = net.ParseIP(ip) })
	s.handle(context.Background(), l, release)
	if _, ok := s.ipam.Model().Lease(netip.MustParseAddr(ip)); ok {
		t.Errorf("the RELEASE of %s outside this node's share was not applied", ip)
	}
}

// TestNoOfferWhileBehind: a node that has not yet caught up with the cluster's log
// since it started offers nothing (its model may be behind); once caught up, it does.
func TestNoOfferWhileBehind(t *testing.T) {
	s, l := newService(t)
	var caughtUp bool
	s.caughtUp = func() bool { return caughtUp }
	if offer, _ := s.handle(context.Background(), l, message(t, mac(60), dhcpv4.MessageTypeDiscover)); offer != nil {
		t.Errorf("an offer while behind the log: %v", offer.YourIPAddr)
	}
	caughtUp = true
	if offer, _ := s.handle(context.Background(), l, message(t, mac(60), dhcpv4.MessageTypeDiscover)); offer == nil {
		t.Errorf("no offer once caught up")
	}
}

// TestHolderWinsOverAStaleOffer: in a cluster a node may offer an address to one
// client while another node grants it to a second (each offers from its own model).
// The holder's renewal or rebind to the first node is ACKed, not NAKed for that
// offer, which lapses.
func TestHolderWinsOverAStaleOffer(t *testing.T) {
	s, l := newService(t)
	holder := mac(41)
	ip := lease(t, s, l, holder)
	s.offers.mu.Lock()
	s.offers.byIP[netip.MustParseAddr(ip)] = offer{mac: site.MAC(mac(42)), until: time.Now().Add(offerHold)}
	s.offers.mu.Unlock()
	renew := message(t, holder, dhcpv4.MessageTypeRequest, func(m *dhcpv4.DHCPv4) { m.ClientIPAddr = net.ParseIP(ip) })
	if ack, _ := s.handle(context.Background(), l, renew); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("the holder's renewal of %s: got %v, want an ACK", ip, ack)
	}
	if s.offers.OfferedToOther(netip.MustParseAddr(ip), site.MAC(holder)) {
		t.Error("the stale offer outlived the holder's renewal")
	}
	// A client that holds no lease of the address is still refused it.
	other := message(t, mac(43), dhcpv4.MessageTypeRequest, requested(ip))
	s.offers.mu.Lock()
	s.offers.byIP[netip.MustParseAddr(ip)] = offer{mac: site.MAC(mac(42)), until: time.Now().Add(offerHold)}
	s.offers.mu.Unlock()
	if nak, _ := s.handle(context.Background(), l, other); nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("another client's REQUEST for an address offered to a third: got %v, want a NAK", nak)
	}
}
