// Package dhcp6 answers DHCPv6 (RFC 8415) on the interfaces DHCP serves, for the
// site's IPv6 subnets that ask for it (subnets[].dhcp6). A host reserved by its MAC
// (learnt from the client's DUID-LL or DUID-LLT, or from its link-local address's
// EUI-64) gets its IPv6 address in a stateful subnet; every client gets infrad's DNS
// (option 23), the domain (24) and infrad's NTP (56) where infrad answers on that
// link. Nothing is committed: the address is the host's, and so are its AAAA and
// PTR. There are no pools yet, so a client without a reservation is told
// NoAddrsAvail. A relayed client's subnet is the one its relay's link address is in,
// and its MAC the relay's client link-layer address (option 79) when it gives one.
package dhcp6

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/server6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv6"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/service"
	"github.com/infrad/infrad/pkg/site"
)

// Options configure a Service.
type Options struct {
	Site     *config.Site          // validated; non-nil
	IPAM     *ipam.IPAM            // non-nil: the subnets and hosts, as the site has them now
	Registry prometheus.Registerer // nil: no metrics
	Logger   *slog.Logger          // nil: slog.Default()
}

// Service is the DHCPv6 server. It is a service.Service.
type Service struct {
	log     *slog.Logger
	ipam    *ipam.IPAM
	site    atomic.Pointer[config.Site]
	health  service.Tracker
	replies *prometheus.CounterVec

	mu    sync.Mutex
	conns []*link // nil: stopped
	done  sync.WaitGroup
}

// New returns a stopped Service.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Service{log: opts.Logger, ipam: opts.IPAM,
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infrad_dhcp6_replies_total",
			Help: "DHCPv6 messages answered, by the message's type and what the client got: address, options or none."}, []string{"type", "gave"})}
	s.site.Store(opts.Site)
	if opts.Registry != nil {
		opts.Registry.MustRegister(s.replies)
	}
	return s
}

// Name is "dhcp6".
func (s *Service) Name() string { return "dhcp6" }

// link is one interface answered on.
type link struct {
	ifi  *net.Interface
	conn *net.UDPConn
	duid dhcpv6.DUID // the server's identifier on it: DUID-LL of its MAC
}

// Start binds [::]:547 on each of DHCP's interfaces, when a subnet asks for DHCPv6,
// joins the servers' multicast groups and answers there.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns != nil {
		return nil
	}
	if !s.wanted() {
		s.conns = []*link{}
		return nil
	}
	var links []*link
	fail := func(err error) error {
		for _, l := range links {
			l.conn.Close()
		}
		return err
	}
	for _, name := range s.site.Load().DHCP.Interfaces {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return fail(fmt.Errorf("dhcpv6 on %s: %w", name, err))
		}
		conn, err := server6.NewIPv6UDPConn(name, &net.UDPAddr{IP: net.IPv6unspecified, Port: dhcpv6.DefaultServerPort})
		if err != nil {
			return fail(fmt.Errorf("dhcpv6 on %s: %w", name, err))
		}
		p := ipv6.NewPacketConn(conn)
		for _, g := range []net.IP{dhcpv6.AllDHCPRelayAgentsAndServers, dhcpv6.AllDHCPServers} {
			if err := p.JoinGroup(ifi, &net.UDPAddr{IP: g}); err != nil {
				conn.Close()
				return fail(fmt.Errorf("dhcpv6 on %s: join %s: %w", name, g, err))
			}
		}
		links = append(links, &link{ifi: ifi, conn: conn, duid: &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: ifi.HardwareAddr}})
	}
	s.conns = links
	s.health.Reset()
	for _, l := range links {
		s.done.Add(1)
		go func() { defer s.done.Done(); s.serve(l) }()
		s.log.Info("dhcpv6 listening", "interface", l.ifi.Name)
	}
	return nil
}

// wanted reports whether a subnet asks for DHCPv6.
func (s *Service) wanted() bool {
	return slices.ContainsFunc(s.ipam.Model().Subnets(), func(sn site.Subnet) bool { return sn.DHCP6 != "" })
}

// Stop closes the sockets and waits for their readers.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.conns {
		l.conn.Close()
	}
	s.conns = nil
	s.done.Wait()
	return nil
}

// Health reports a socket that stopped.
func (s *Service) Health() service.Health { return s.health.Health() }

// Reload takes a new site; a change of DHCP's interfaces, or DHCPv6 asked for where it
// was not, restarts the service.
func (s *Service) Reload(ctx context.Context, cfg *config.Site) error {
	old := s.site.Swap(cfg)
	s.mu.Lock()
	idle := len(s.conns) == 0
	s.mu.Unlock()
	if slices.Equal(old.DHCP.Interfaces, cfg.DHCP.Interfaces) && idle != s.wanted() {
		return nil
	}
	s.Stop(ctx)
	if err := s.Start(ctx); err != nil {
		s.health.Fail("reload", "dhcpv6 did not start with the reloaded site: "+err.Error())
		return err
	}
	return nil
}

// serve reads l's messages one at a time (each is answered from the model, with no
// write) until its socket is closed.
func (s *Service) serve(l *link) {
	buf := make([]byte, 4096)
	for {
		n, peer, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.health.Fail(l.ifi.Name, "reading: "+err.Error())
			}
			return
		}
		in, err := dhcpv6.FromBytes(buf[:n])
		if err != nil {
			continue // malformed: dropped
		}
		out, typ, gave := s.handle(l, peer.Addr(), in)
		if out == nil {
			continue
		}
		if _, err := l.conn.WriteToUDPAddrPort(out.ToBytes(), peer); err != nil {
			s.log.Warn("dhcpv6 reply", "interface", l.ifi.Name, "to", peer, "err", err)
			continue
		}
		s.replies.WithLabelValues(typ.String(), gave).Inc()
	}
}

// handle is the answer to what arrived on l from the peer at from, the type of the
// client's message and what the answer gives; nil: none. A client's message is
// answered for the subnet l holds an address in; a relay's for the subnet its link
// address is in, through the relays it came by.
func (s *Service) handle(l *link, from netip.Addr, in dhcpv6.DHCPv6) (dhcpv6.DHCPv6, dhcpv6.MessageType, string) {
	if m, ok := in.(*dhcpv6.Message); ok {
		sn, own, ok := s.subnetOf(l)
		if !ok {
			return nil, 0, ""
		}
		reply, gave := s.reply(sn, own, l.duid, from, site.MAC{}, m)
		if reply == nil {
			return nil, 0, ""
		}
		return reply, m.Type(), gave
	}
	relay, ok := in.(*dhcpv6.RelayMessage)
	if !ok {
		return nil, 0, ""
	}
	return s.relayed(relay, s.globals(l), l.duid)
}

// relayed is the answer to a relay's message, through the relays it came by, for
// the subnet the relay next to the client is on; infrad's addresses are own and its
// identifier duid.
func (s *Service) relayed(relay *dhcpv6.RelayMessage, own []netip.Addr, duid dhcpv6.DUID) (dhcpv6.DHCPv6, dhcpv6.MessageType, string) {
	if relay.Type() != dhcpv6.MessageTypeRelayForward {
		return nil, 0, ""
	}
	inner := relay // the relay next to the client
	for {
		next, ok := inner.Options.RelayMessage().(*dhcpv6.RelayMessage)
		if !ok {
			break
		}
		inner = next
	}
	m, err := relay.GetInnerMessage()
	if err != nil {
		return nil, 0, ""
	}
	link, _ := netip.AddrFromSlice(inner.LinkAddr)
	sn, ok := s.subnetWith(link.Unmap())
	if !ok {
		return nil, 0, ""
	}
	var mac site.MAC
	if _, hw := inner.Options.ClientLinkLayerAddress(); len(hw) == 6 {
		copy(mac[:], hw)
	}
	peer, _ := netip.AddrFromSlice(inner.PeerAddr)
	reply, gave := s.reply(sn, own, duid, peer.Unmap(), mac, m)
	if reply == nil {
		return nil, 0, ""
	}
	out, err := dhcpv6.NewRelayReplFromRelayForw(relay, reply)
	if err != nil {
		return nil, 0, ""
	}
	return out, m.Type(), gave
}

// subnetWith is the subnet asking for DHCPv6 that holds a.
func (s *Service) subnetWith(a netip.Addr) (site.Subnet, bool) {
	for _, sn := range s.ipam.Model().Subnets() {
		if sn.DHCP6 != "" && sn.CIDR.Contains(a) {
			return sn, true
		}
	}
	return site.Subnet{}, false
}

// globals are l's global IPv6 addresses: where a relayed client reaches infrad.
func (s *Service) globals(l *link) []netip.Addr {
	return slices.DeleteFunc(service.Addrs(l.ifi), func(a netip.Addr) bool { return !a.Is6() || !a.IsGlobalUnicast() })
}

// reply is the answer to m from the client at from (its MAC mac when a relay said
// it; zero: learnt from m), of subnet sn, where infrad's addresses are own and its
// identifier duid; nil: none (a message for another server, or one a server does
// not answer).
func (s *Service) reply(sn site.Subnet, own []netip.Addr, duid dhcpv6.DUID, from netip.Addr, mac site.MAC, m *dhcpv6.Message) (*dhcpv6.Message, string) {
	if sid := m.Options.ServerID(); sid != nil && !sid.Equal(duid) {
		return nil, "" // another server's
	}
	mods := []dhcpv6.Modifier{dhcpv6.WithServerID(duid)}
	mods = append(mods, s.options(own)...)
	gave := "options"
	switch m.Type() {
	case dhcpv6.MessageTypeSolicit, dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind, dhcpv6.MessageTypeConfirm:
		if sn.DHCP6 != site.DHCP6Stateful || m.Options.OneIANA() == nil {
			break
		}
		if mac.IsZero() {
			mac = macOf(m, from)
		}
		ia, ok := s.address(sn, mac, m.Options.OneIANA())
		mods = append(mods, dhcpv6.WithOption(ia))
		gave = "address"
		if !ok {
			gave = "none"
		}
	case dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		gave = "none" // nothing was committed: nothing to end
	case dhcpv6.MessageTypeInformationRequest:
	default:
		return nil, ""
	}
	// An Advertise to a Solicit (no rapid commit yet), else a Reply; the client's
	// identifier echoed when it gave one (an Information-request may not).
	reply := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeReply, TransactionID: m.TransactionID}
	if m.Type() == dhcpv6.MessageTypeSolicit {
		reply.MessageType = dhcpv6.MessageTypeAdvertise
	}
	if cid := m.GetOneOption(dhcpv6.OptionClientID); cid != nil {
		reply.AddOption(cid)
	}
	for _, mod := range mods {
		mod(reply)
	}
	return reply, gave
}

// address is the answer to the client's IA_NA req on sn: the address of the host
// reserved for mac, valid for the site's lease time (renewed at half of it, rebound
// at four fifths), or NoAddrsAvail; ok says it is an address.
func (s *Service) address(sn site.Subnet, mac site.MAC, req *dhcpv6.OptIANA) (*dhcpv6.OptIANA, bool) {
	ia := &dhcpv6.OptIANA{IaId: req.IaId}
	if h, found := s.ipam.Model().HostWithMAC(mac); found && !mac.IsZero() {
		for _, a := range h.Addrs() {
			if a.Is6() && sn.CIDR.Contains(a) {
				lt := s.site.Load().DHCP.LeaseTime
				ia.T1, ia.T2 = lt/2, lt*4/5
				ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: a.AsSlice(), PreferredLifetime: lt, ValidLifetime: lt})
				return ia, true
			}
		}
	}
	ia.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail,
		StatusMessage: "no address is reserved for this client's MAC in subnet " + sn.Name + " (infrad has no DHCPv6 pools yet)"})
	return ia, false
}

// macOf is the client's MAC: from its DUID-LL or DUID-LLT, else from the EUI-64 of its
// link-local address; zero when neither says it.
func macOf(m *dhcpv6.Message, from netip.Addr) site.MAC {
	var mac site.MAC
	switch d := m.Options.ClientID().(type) {
	case *dhcpv6.DUIDLL:
		if len(d.LinkLayerAddr) == 6 {
			copy(mac[:], d.LinkLayerAddr)
			return mac
		}
	case *dhcpv6.DUIDLLT:
		if len(d.LinkLayerAddr) == 6 {
			copy(mac[:], d.LinkLayerAddr)
			return mac
		}
	}
	if b := from.As16(); from.IsLinkLocalUnicast() && b[11] == 0xff && b[12] == 0xfe {
		return site.MAC{b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]}
	}
	return mac
}

// subnetOf is the subnet asking for DHCPv6 that l holds an address in, and l's
// addresses in it.
func (s *Service) subnetOf(l *link) (site.Subnet, []netip.Addr, bool) {
	addrs := service.Addrs(l.ifi)
	for _, sn := range s.ipam.Model().Subnets() {
		if sn.DHCP6 == "" {
			continue
		}
		if own := slices.DeleteFunc(slices.Clone(addrs), func(a netip.Addr) bool { return !sn.CIDR.Contains(a) }); len(own) > 0 {
			return sn, own, true
		}
	}
	return site.Subnet{}, nil, false
}

// options are what every client of the link gets: infrad's DNS at its addresses on
// the link where it answers there, the domain, and infrad's NTP likewise.
func (s *Service) options(own []netip.Addr) []dhcpv6.Modifier {
	cfg := s.site.Load()
	var dns []net.IP
	var ntp dhcpv6.Options
	for _, a := range own {
		if cfg.DNS.AnswersAt(a) {
			dns = append(dns, a.AsSlice())
		}
		if cfg.NTP.AnswersAt(a) {
			srv := dhcpv6.NTPSuboptionSrvAddr(a.AsSlice())
			ntp.Add(&srv)
		}
	}
	var mods []dhcpv6.Modifier
	if len(dns) > 0 {
		mods = append(mods, dhcpv6.WithDNS(dns...), dhcpv6.WithDomainSearchList(strings.TrimSuffix(string(cfg.Domain), ".")))
	}
	if len(ntp) > 0 {
		mods = append(mods, dhcpv6.WithOption(&dhcpv6.OptNTPServer{Suboptions: ntp}))
	}
	return mods
}
