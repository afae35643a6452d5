// Package dhcp6 answers DHCPv6 (RFC 8415) on the interfaces DHCP serves, for the
// site's IPv6 subnets that ask for it (subnets[].dhcp6). In a stateful subnet a host
// reserved by its DUID (hosts[].duid) or its MAC (learnt from the client's DUID-LL or
// DUID-LLT, its link-local address's EUI-64, or its relay's option 79) gets its
// host's IPv6 address, nothing committed: the address is the host's, and so are its
// AAAA and PTR; any other client gets a lease from the subnet's DHCP ranges,
// committed through the write path (ipam.CommitLease6) before the Reply, with an AAAA
// and a PTR when it gives its name (option 39); a router that asks is delegated a
// prefix from the subnet's pool (IA_PD, subnets[].delegate), a lease of its own.
// Every client gets infrad's DNS (option 23), the domain (24) and infrad's NTP (56)
// where infrad answers on that link, and a machine that boots from a profile its
// boot file's URL (59). A relayed client's subnet is the one its relay's link address
// is in.
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
	"time"

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
	IPAM     *ipam.IPAM            // non-nil: the model, and the write path for leases
	Registry prometheus.Registerer // nil: no metrics
	Logger   *slog.Logger          // nil: slog.Default()
	Now      func() time.Time      // nil: time.Now
	// Share, Quorum, CaughtUp and Evicted are the cluster's, as DHCPv4 has them
	// (dhcp.Options): which share of the new clients this node answers, whether it
	// can commit leases, whether it has caught up with the log since it started, why
	// it is no longer a member. nil: one box.
	Share    func() (mine, of int)
	Quorum   func() bool
	CaughtUp func() bool
	Evicted  func() string
	// Promised is told of each lease renewed without the quorum, before the client
	// is, as DHCPv4's (dhcp.Options.Promised); nil: not told.
	Promised func(index uint64, until time.Time) error
	// Boot is the boot service, which network boot clients are pointed at (option
	// 59); nil: none are.
	Boot Booter
}

// Service is the DHCPv6 server. It is a service.Service.
type Service struct {
	log     *slog.Logger
	ipam    *ipam.IPAM
	opts    Options
	now     func() time.Time
	site    atomic.Pointer[config.Site]
	health  service.Tracker
	replies *prometheus.CounterVec

	mu        sync.Mutex
	conns     []*link            // nil: stopped; empty: no subnet asks for DHCPv6
	stop      context.CancelFunc // ends the workers, and the commits of the links' messages
	commits   chan queued        // the messages that wait for the write path, for the workers
	done      sync.WaitGroup     // the links' readers and the workers
	unfollow  context.CancelFunc // ends follow
	following sync.WaitGroup
}

// New returns a stopped Service.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{log: opts.Logger, ipam: opts.IPAM, opts: opts, now: opts.Now,
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
	// addrs are the interface's addresses, read again when older than addrsAge (a
	// read is a netlink dump: too slow for each message).
	mu     sync.Mutex
	addrs  []netip.Addr
	readAt time.Time
}

// addrsAge is how long a link's addresses are used before they are read again.
const addrsAge = 2 * time.Second

// maxCommits is how many messages that wait for the write path (a Request, Renew,
// Rebind, Release or Decline, a Solicit with rapid commit) are answered at once, by
// as many workers, and how many more wait for one; a Request past them is dropped
// (its client asks again), as DHCPv4's (dhcp.maxCommits).
const maxCommits = 1024

// queued is a message for the workers: what arrived on l from the peer at from.
type queued struct {
	l    *link
	from netip.AddrPort
	in   dhcpv6.DHCPv6
}

// addresses are l's addresses, read at most addrsAge ago.
func (l *link) addresses(now time.Time) []netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.readAt.IsZero() || now.Sub(l.readAt) > addrsAge || now.Before(l.readAt) {
		l.addrs, l.readAt = service.Addrs(l.ifi), now
	}
	return l.addrs
}

// Start binds [::]:547 on each of DHCP's interfaces when a subnet asks for DHCPv6,
// joins the servers' multicast groups and answers there. It then follows the site: a
// subnet that comes to ask for DHCPv6 (through the API too) binds them, and the last
// one that stops asking closes them.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns != nil {
		return nil
	}
	if err := s.bind(ctx); err != nil {
		return err
	}
	ctx, s.unfollow = context.WithCancel(context.WithoutCancel(ctx))
	s.following.Go(func() { s.follow(ctx) })
	return nil
}

// bind opens the links when a subnet asks for DHCPv6, and starts their readers and
// the workers; s.conns is empty when none asks. s.mu is held.
func (s *Service) bind(ctx context.Context) error {
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
		service.GrowReadBuffer(conn, service.DHCPReadBuffer)
		links = append(links, &link{ifi: ifi, conn: conn, duid: &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: ifi.HardwareAddr}})
	}
	s.conns = links
	s.health.Reset()
	ctx, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	s.commits = make(chan queued, maxCommits)
	for range maxCommits {
		s.done.Go(func() { s.commitLoop(ctx, s.commits) })
	}
	for _, l := range links {
		s.done.Go(func() { s.serve(ctx, l) })
		s.log.Info("dhcpv6 listening", "interface", l.ifi.Name)
	}
	return nil
}

// unbind closes the links and waits for their readers and the workers. s.mu is held.
func (s *Service) unbind() {
	for _, l := range s.conns {
		l.conn.Close()
	}
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
	s.conns = nil
	s.done.Wait()
}

// follow binds or closes the links as the subnets come to ask for DHCPv6 or stop,
// until ctx ends.
func (s *Service) follow(ctx context.Context) {
	for {
		_, changed := s.ipam.Watch()
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		s.mu.Lock()
		if s.conns != nil && (len(s.conns) > 0) != s.wanted() {
			s.unbind()
			if err := s.bind(ctx); err != nil {
				s.conns = []*link{} // tried again at the next change
				s.health.Fail("subnets", "dhcpv6 did not start for the subnets that ask for it: "+err.Error())
			}
		}
		s.mu.Unlock()
	}
}

// wanted reports whether a subnet asks for DHCPv6.
func (s *Service) wanted() bool {
	return slices.ContainsFunc(s.ipam.Model().Subnets(), func(sn site.Subnet) bool { return sn.DHCP6 != "" })
}

// Stop closes the sockets and waits for their readers.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.unfollow != nil {
		s.unfollow()
		s.unfollow = nil
	}
	s.mu.Unlock()
	s.following.Wait() // (it takes s.mu)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unbind()
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

// serve reads l's messages until its socket is closed. It answers those that touch
// only memory (a Solicit, a Confirm, an Information-request) before reading on; one
// that waits for the write path goes to the workers (commitLoop), whose commits the
// group commit gathers, or is dropped when they are all busy and as many wait (a
// Release or Decline is not: its client may send it once, so it gets a goroutine).
func (s *Service) serve(ctx context.Context, l *link) {
	buf := make([]byte, 4096)
	for {
		n, peer, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.health.Fail(l.ifi.Name, "reading: "+err.Error())
			}
			return
		}
		// The parsed options point into the bytes they came from: each message gets its own.
		in, err := dhcpv6.FromBytes(slices.Clone(buf[:n]))
		if err != nil {
			continue // malformed: dropped
		}
		switch typ := commitType(in); {
		case typ == 0:
			s.answer(ctx, l, peer, in)
		case s.queue(queued{l, peer, in}):
		case typ == dhcpv6.MessageTypeRelease || typ == dhcpv6.MessageTypeDecline:
			s.done.Go(func() { s.answer(ctx, l, peer, in) })
		}
	}
}

// commitType is the type of the client's message in in when answering it waits for
// the write path; 0 when it does not.
func commitType(in dhcpv6.DHCPv6) dhcpv6.MessageType {
	m, err := in.GetInnerMessage()
	if err != nil {
		return 0
	}
	switch typ := m.Type(); typ {
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind, dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		return typ
	case dhcpv6.MessageTypeSolicit:
		if m.GetOneOption(dhcpv6.OptionRapidCommit) != nil {
			return typ
		}
	}
	return 0
}

// queue hands q to the workers, unless they are all busy and as many wait.
func (s *Service) queue(q queued) bool {
	select {
	case s.commits <- q:
		return true
	default:
		return false
	}
}

// commitLoop answers queued messages until ctx ends.
func (s *Service) commitLoop(ctx context.Context, commits <-chan queued) {
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-commits:
			s.answer(ctx, q.l, q.from, q.in)
		}
	}
}

// answer handles what arrived on l from the peer at from, and sends the reply, if
// there is one.
func (s *Service) answer(ctx context.Context, l *link, from netip.AddrPort, in dhcpv6.DHCPv6) {
	out, typ, gave := s.handle(ctx, l, from.Addr(), in)
	if out == nil {
		return
	}
	if _, err := l.conn.WriteToUDPAddrPort(out.ToBytes(), from); err != nil {
		s.log.Warn("dhcpv6 reply", "interface", l.ifi.Name, "to", from, "err", err)
		return
	}
	s.replies.WithLabelValues(typ.String(), gave).Inc()
}

// handle is the answer to what arrived on l from the peer at from, the type of the
// client's message and what the answer gives; nil: none. A client's message is
// answered for the subnet l holds an address in; a relay's for the subnet its link
// address is in, through the relays it came by.
func (s *Service) handle(ctx context.Context, l *link, from netip.Addr, in dhcpv6.DHCPv6) (dhcpv6.DHCPv6, dhcpv6.MessageType, string) {
	if s.opts.Evicted != nil && s.opts.Evicted() != "" {
		return nil, 0, "" // no longer the cluster's: its model falls behind for good
	}
	addrs := l.addresses(s.now())
	if m, ok := in.(*dhcpv6.Message); ok {
		sn, own, ok := s.subnetOf(addrs)
		if !ok {
			return nil, 0, ""
		}
		reply, gave := s.reply(ctx, sn, own, l.duid, from, site.MAC{}, m)
		if reply == nil {
			return nil, 0, ""
		}
		return reply, m.Type(), gave
	}
	relay, ok := in.(*dhcpv6.RelayMessage)
	if !ok {
		return nil, 0, ""
	}
	return s.relayed(ctx, relay, globals(addrs), l.duid)
}

// relayed is the answer to a relay's message, through the relays it came by, for
// the subnet the relay next to the client is on; infrad's addresses are own and its
// identifier duid.
func (s *Service) relayed(ctx context.Context, relay *dhcpv6.RelayMessage, own []netip.Addr, duid dhcpv6.DUID) (dhcpv6.DHCPv6, dhcpv6.MessageType, string) {
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
	reply, gave := s.reply(ctx, sn, own, duid, peer.Unmap(), mac, m)
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

// globals are the global IPv6 addresses of addrs: where a relayed client reaches
// infrad.
func globals(addrs []netip.Addr) []netip.Addr {
	return slices.DeleteFunc(slices.Clone(addrs), func(a netip.Addr) bool { return !a.Is6() || !a.IsGlobalUnicast() })
}

// subnetOf is the subnet asking for DHCPv6 that a link of addresses addrs holds an
// address in, and the link's addresses in it.
func (s *Service) subnetOf(addrs []netip.Addr) (site.Subnet, []netip.Addr, bool) {
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
