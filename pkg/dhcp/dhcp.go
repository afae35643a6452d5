// Package dhcp serves DHCPv4 (insomniacslk/dhcp: server4's interface-bound socket,
// dhcpv4's messages) on the site's interfaces, one server per interface. It decides
// from IPAM's published model and changes leases through IPAM's write path: a host's
// MAC always gets the host's address, other clients get addresses of the subnet's
// dhcp ranges only, and every lease is checked, fsync'ed and in the model (so in DNS,
// with its hostname) before its ACK leaves.
package dhcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/ratelimit"
	"github.com/infrad/infrad/pkg/service"
	"github.com/infrad/infrad/pkg/site"
)

// Options configure a Service.
type Options struct {
	Site     *config.Site          // validated; non-nil
	IPAM     *ipam.IPAM            // non-nil: the model, and the write path for leases
	Registry prometheus.Registerer // non-nil
	Logger   *slog.Logger          // nil: slog.Default()
	Now      func() time.Time      // nil: time.Now
	// Share says which share of the clients this node answers in a cluster (see
	// Service.mine); nil: every client. Quorum says whether the node can commit
	// leases; nil: always.
	Share  func() (mine, of int)
	Quorum func() bool
	// CaughtUp says whether the model has caught up with the cluster's log since the
	// node started; nil: always. Before, the node offers no address.
	CaughtUp func() bool
	// Promised is told of each lease renewed without the quorum, before the client
	// is: the applied index read before the model it was renewed from, and when the
	// renewal ends (the cluster's leader gives no address a lease of it may still
	// hold to another client before). When it cannot keep that, the client is not
	// answered. nil: not told.
	Promised func(index uint64, until time.Time) error
	// Evicted says why the node is no longer a member of its cluster ("": it is);
	// nil: never. An evicted node answers no client: its model falls behind for good.
	Evicted func() string
	// Boot is the boot service, which network boot clients are pointed at; nil: none are.
	Boot Booter
}

// maxCommits bounds the messages waiting for their commits at once (REQUESTs,
// RELEASEs, DECLINEs): as many workers answer them, and as many more wait for a
// worker; a REQUEST past them is dropped (the client asks again). A REQUEST whose
// commit would wait behind so many others is answered later than its client waits,
// and in a cluster a backlog of forwarded commits starves the leader's heartbeats.
const maxCommits = 1024

// readBatch is how many datagrams a DHCP socket takes from the kernel at once.
const readBatch = 32

// Service is the DHCP service. It is a service.Service. With no interfaces it is
// idle and ready.
type Service struct {
	log       *slog.Logger
	ipam      *ipam.IPAM
	share     func() (mine, of int)
	hasQuorum func() bool
	caughtUp  func() bool
	promised  func(index uint64, until time.Time) error
	evicted   func() string
	boot      Booter
	now       func() time.Time
	metrics   *metrics

	settings atomic.Pointer[settings]
	options  atomic.Pointer[optionCache] // each subnet's options, encoded
	offers   *offers
	ends     heldEnds // RELEASEs and DECLINEs waiting for the cluster's quorum
	inFlight inFlight // lease commits whose outcome is not known
	activity activity // the last messages received and sent, for the activity view
	health   service.Tracker
	commits  chan queued // the messages that wait for the write path, for the workers

	mu         sync.Mutex // guards what follows
	interfaces []string
	proxy      bool // the mode the links were bound for: a proxy binds port 4011 too
	links      []*link
	stop       context.CancelFunc // ends the loops
	loops      sync.WaitGroup

	exhaustedMu  sync.Mutex
	exhaustedLog map[string]time.Time // when exhaustion of a subnet was last logged
}

// settings are what the site file says about replies, and the starvation limits.
type settings struct {
	leaseTime time.Duration
	dns       netip.Addr // infrad's address for clients, its DNS and NTP (dns.advertise); zero: the interface's
	perMAC    *ratelimit.Limiter[site.MAC]
	perRelay  *ratelimit.Limiter[netip.Addr]
	// proxy says infrad is a proxyDHCP server (dhcp.mode: proxy): another server
	// hands out the addresses; infrad answers network boot clients only, with where
	// they boot from, and commits nothing.
	proxy bool
}

// link is one interface served.
type link struct {
	name    string
	addr    netip.Addr   // its IPv4 address: the server identifier
	conn    *net.UDPConn // 0.0.0.0:67, bound to the interface
	closing atomic.Bool  // the service is closing conn: a closed socket is no fault
	// bootServer says conn is port 4011 (PXE's boot server discovery), where a proxy
	// answers the REQUESTs of network boot clients that have their address.
	bootServer bool
	// cancel ends the context of the commits made for l's clients: a link closed
	// (Stop, a reload) answers no one, so its commits stop waiting.
	cancel context.CancelFunc
}

// close closes l's socket on the service's behalf.
func (l *link) close() {
	l.closing.Store(true)
	l.conn.Close()
	l.cancel()
}

// New returns a stopped DHCP service.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{
		log:          opts.Logger,
		ipam:         opts.IPAM,
		share:        opts.Share,
		hasQuorum:    opts.Quorum,
		caughtUp:     opts.CaughtUp,
		promised:     opts.Promised,
		evicted:      opts.Evicted,
		boot:         opts.Boot,
		now:          opts.Now,
		metrics:      newMetrics(opts.Registry),
		exhaustedLog: map[string]time.Time{},
		commits:      make(chan queued, maxCommits),
	}
	s.offers = newOffers(opts.Now, s.metrics.offersDropped.Inc)
	opts.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "infrad_dhcp_ends_waiting",
		Help: "RELEASEs and DECLINEs kept while the cluster takes no write, waiting to be applied when it does (lost if the node stops first).",
	}, func() float64 { return float64(s.ends.len()) }))
	s.setSite(opts.Site)
	return s
}

func (s *Service) setSite(cfg *config.Site) {
	d := cfg.DHCP
	s.settings.Store(&settings{leaseTime: d.LeaseTime, dns: cfg.DNS.Advertise, proxy: d.Mode == config.DHCPProxy,
		perMAC:   ratelimit.New[site.MAC](d.RateLimit, s.metrics.evictedMAC),
		perRelay: ratelimit.New[netip.Addr](d.RelayRateLimit, s.metrics.evictedRelay)})
	s.interfaces = cfg.DHCP.Interfaces
	s.proxy = d.Mode == config.DHCPProxy
}

// Name is "dhcp".
func (s *Service) Name() string { return "dhcp" }

// Start binds every interface and serves. A failed Start binds nothing.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		return nil
	}
	s.health.Reset()
	if err := s.bind(); err != nil {
		return err
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.loops.Go(func() { s.expireLoop(loopCtx) })
	for range maxCommits {
		s.loops.Go(func() { s.commitLoop(loopCtx) })
	}
	return nil
}

// queued is a message that waits for the write path, read on l.
type queued struct {
	ctx context.Context // l's: ends when l is closed
	l   *link
	m   *dhcpv4.DHCPv4
}

// commitLoop answers the messages that wait for the write path until ctx ends.
func (s *Service) commitLoop(ctx context.Context) {
	for {
		select {
		case c := <-s.commits:
			s.answer(c.ctx, c.l, c.m)
		case <-ctx.Done():
			return
		}
	}
}

// bind opens a server on every interface, closing them all if one fails. s.mu is held.
func (s *Service) bind() error {
	var links []*link
	ports := []int{dhcpv4.ServerPort}
	if s.proxy {
		ports = append(ports, pxeBootServerPort)
	}
	for _, name := range s.interfaces {
		for _, port := range ports {
			l, err := s.open(name, port)
			if err != nil {
				for _, l := range links {
					l.close()
				}
				return err
			}
			links = append(links, l)
		}
	}
	for _, l := range links {
		ctx, cancel := context.WithCancel(context.Background())
		l.cancel = cancel
		s.loops.Go(func() { s.serve(ctx, l) }) // ends when Stop or a reload closes l
		s.log.Info("dhcp listening", "interface", l.name, "server_id", l.addr, "pxe_boot_server", l.bootServer, "proxy", s.proxy)
	}
	s.links = links
	return nil
}

// pxeBootServerPort is where PXE firmware and iPXE ask a proxyDHCP server for their
// boot file once they have an address (PXE 2.1, boot server discovery).
const pxeBootServerPort = 4011

// open binds 0.0.0.0:port (67, or PXE's 4011) on the interface (SO_BINDTODEVICE): a
// socket bound to the interface's address would not see broadcast DISCOVERs.
func (s *Service) open(name string, port int) (*link, error) {
	iface, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("dhcp interface %s: %w", name, err)
	}
	l := &link{name: name, bootServer: port == pxeBootServerPort}
	for _, a := range service.Addrs(iface) {
		if a.Is4() {
			l.addr = a
			break
		}
	}
	if !l.addr.IsValid() {
		return nil, fmt.Errorf("dhcp interface %s has no IPv4 address, which infrad needs as its server identifier", name)
	}
	conn, err := server4.NewIPv4UDPConn(name, &net.UDPAddr{IP: net.IPv4zero, Port: port})
	if err != nil {
		return nil, fmt.Errorf("dhcp interface %s: %w", name, err)
	}
	service.GrowReadBuffer(conn, service.DHCPReadBuffer)
	l.conn, l.cancel = conn, func() {}
	return l, nil
}

// serve reads l's socket until it is closed, in batches (recvmmsg). It answers a
// DISCOVER or an INFORM before reading on, as they touch only memory: replies leave
// in the order requests came, and an overloaded server drops what it cannot read (in
// the kernel) instead of queueing work it will answer too late. A REQUEST, RELEASE
// or DECLINE waits for the disk, so it goes to the workers (commitLoop), whose
// commits the group commit gathers; a REQUEST that finds every worker busy and
// maxCommits more waiting for one is dropped. A RELEASE or DECLINE is never dropped: its client sends it once. (server4's
// own loop starts a goroutine for every packet.)
func (s *Service) serve(ctx context.Context, l *link) {
	conn := ipv4.NewPacketConn(l.conn)
	msgs := make([]ipv4.Message, readBatch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 1500)}
	}
	for {
		n, err := conn.ReadBatch(msgs, 0)
		if errors.Is(err, net.ErrClosed) {
			if !l.closing.Load() {
				s.health.Fail("socket "+l.name, "the socket on interface "+l.name+" was closed under the service")
			}
			return
		}
		if err != nil {
			s.log.Warn("dhcp read failed", "interface", l.name, "err", err)
			continue
		}
		proxy := s.settings.Load().proxy
		for _, msg := range msgs[:n] {
			// The parsed options point into the bytes they came from: give each message its own.
			m, err := dhcpv4.FromBytes(bytes.Clone(msg.Buffers[0][:msg.N]))
			if err != nil {
				continue // malformed: dropped
			}
			switch typeOf(m) {
			case dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline:
				if proxy {
					s.answerTo(ctx, l, m, msg.Addr) // a proxy commits nothing
					break
				}
				s.toCommit(queued{ctx, l, m})
			default:
				s.answerTo(ctx, l, m, msg.Addr)
			}
		}
	}
}

// toCommit hands c to the workers: a REQUEST that finds them all busy and as many
// waiting is dropped; a RELEASE or DECLINE is answered by a goroutine of its own.
func (s *Service) toCommit(c queued) {
	select {
	case s.commits <- c:
		return
	default:
	}
	if typeOf(c.m) == dhcpv4.MessageTypeRequest {
		s.metrics.shed.Inc()
		return
	}
	s.loops.Go(func() { s.answer(c.ctx, c.l, c.m) })
}

// answer handles m and sends the reply, if there is one.
func (s *Service) answer(ctx context.Context, l *link, m *dhcpv4.DHCPv4) { s.answerTo(ctx, l, m, nil) }

// answerTo is answer for a message that came from from: a PXE boot server's reply
// (port 4011) goes back to where its request came from.
func (s *Service) answerTo(ctx context.Context, l *link, m *dhcpv4.DHCPv4, from net.Addr) {
	if m.OpCode == dhcpv4.OpcodeBootRequest {
		s.activity.add(eventOf(l, m, false, s.now()))
	}
	resp, dst := s.handle(ctx, l, m)
	if resp == nil {
		return
	}
	if to, ok := from.(*net.UDPAddr); ok && l.bootServer {
		dst = to
	}
	s.activity.add(eventOf(l, resp, true, s.now()))
	if _, err := l.conn.WriteTo(appendPacket(make([]byte, 0, 576), resp), dst); err != nil {
		s.log.Warn("dhcp reply not sent", "to", dst, "err", err)
	}
}

// Stop closes every server and ends the loops.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop == nil {
		return nil
	}
	for _, l := range s.links {
		l.close()
	}
	s.links = nil
	s.stop()
	s.stop = nil
	err := service.Wait(ctx, &s.loops)
	for { // what is queued was read on links now closed: no one to answer
		select {
		case <-s.commits:
		default:
			return err
		}
	}
}

// Health reports a socket lost or an interface gone (failed: the Manager restarts the
// service), and interfaces a reload could not bind.
func (s *Service) Health() service.Health { return s.health.Health() }

// checkLinks finds each served interface still there with its address, or records why
// not.
func (s *Service) checkLinks() {
	s.mu.Lock()
	links := s.links
	s.mu.Unlock()
	for _, l := range links {
		key := "interface " + l.name
		iface, err := net.InterfaceByName(l.name)
		if err != nil {
			s.health.Fail(key, fmt.Sprintf("interface %s is gone: %v", l.name, err))
			continue
		}
		if !slices.Contains(service.Addrs(iface), l.addr) {
			s.health.Fail(key, fmt.Sprintf("interface %s no longer has %s, the server identifier", l.name, l.addr))
			continue
		}
		s.health.Clear(key)
	}
}

// Reload takes a new site: lease time and options apply at once, and the servers are
// rebound when the interfaces change.
func (s *Service) Reload(site *config.Site) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := !slices.Equal(s.interfaces, site.DHCP.Interfaces) || s.proxy != (site.DHCP.Mode == config.DHCPProxy)
	s.setSite(site)
	if s.stop == nil || !changed {
		return nil
	}
	for _, l := range s.links {
		l.close()
	}
	s.links = nil
	if err := s.bind(); err != nil {
		s.health.Fail("reload", "the reload's interfaces could not be bound: "+err.Error())
		return err
	}
	s.health.Clear("reload")
	return nil
}

// subnetFor is the subnet a message's client is on, as RFC 2131 §4.3.2 (and Kea, and
// ISC dhcpd) choose it: the relay's (giaddr); else, for a REQUEST or INFORM from a
// client that has its address (ciaddr), that address's; else the interface's.
func subnetFor(m *ipam.Model, l *link, msg *dhcpv4.DHCPv4) (site.Subnet, bool) {
	at := l.addr
	switch gi, ci := addr(msg.GatewayIPAddr), addr(msg.ClientIPAddr); {
	case gi.IsValid():
		at = gi
	case ci.IsValid() && (typeOf(msg) == dhcpv4.MessageTypeRequest || typeOf(msg) == dhcpv4.MessageTypeInform):
		at = ci // renewing, or asking for options, by unicast: perhaps through a router, with no relay
	}
	for _, sn := range m.Subnets() {
		if sn.Purpose == site.PurposeNodes && sn.CIDR.Addr().Is4() && sn.CIDR.Contains(at) {
			return sn, true
		}
	}
	return site.Subnet{}, false
}

// reservation is the address of the host with mac, when it is on sn.
func reservation(m *ipam.Model, sn site.Subnet, mac site.MAC) (netip.Addr, bool) {
	h, ok := m.HostWithMAC(mac)
	if !ok || !sn.CIDR.Contains(h.IP) {
		return netip.Addr{}, false
	}
	return h.IP, true
}

// expireLoop reclaims ended leases and quarantines every few seconds.
func (s *Service) expireLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	// The ends kept without the quorum are applied as soon as it is back: a node that
	// fails before has lost them (they live in memory).
	ends := time.NewTicker(250 * time.Millisecond)
	defer ends.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ends.C:
			if s.ends.len() == 0 || !s.quorum() {
				continue
			}
			if n := s.ends.apply(ctx, s.ipam); n > 0 {
				s.log.Info("lease ends kept without the quorum applied", "count", n)
			}
		case <-t.C:
			s.checkLinks()
			s.offers.Expire()
			if !s.quorum() {
				continue // the nodes with the quorum reclaim them
			}
			if n, err := s.ipam.Apply(ctx, ipam.ExpireLeases{Stamp: ipam.Stamp{At: s.now()}}); err != nil {
				s.log.Error("expired leases not reclaimed", "err", err)
			} else if n.(int) > 0 {
				s.log.Info("expired leases reclaimed", "count", n)
			}
		}
	}
}

// warnExhausted logs an exhausted pool, at most once a minute per subnet.
func (s *Service) warnExhausted(sn site.Subnet) {
	s.exhaustedMu.Lock()
	defer s.exhaustedMu.Unlock()
	if last, ok := s.exhaustedLog[sn.Name]; ok && s.now().Sub(last) < time.Minute {
		return
	}
	s.exhaustedLog[sn.Name] = s.now()
	s.log.Warn("dhcp pool exhausted: no address to offer", "subnet", sn.Name)
}

// Leases returns every lease, by address.
func (s *Service) Leases() ([]ipam.Lease, error) { return s.ipam.Leases(), nil }

// Release ends the lease of ip, whoever holds it, as if its client had released it.
func (s *Service) Release(ctx context.Context, ip netip.Addr) error {
	return s.ipam.ReleaseLease(ctx, ip)
}
