// Package ra sends IPv6 router advertisements (RFC 4861) for the site's subnets that
// ask for them (subnets[].ra), on the interfaces DHCP serves: each subnet's prefix for
// SLAAC, infrad's DNS as the recursive DNS server and the domain as the search list
// (RFC 8106), and a router lifetime only where infrad is the link's router. It
// answers router solicitations, and advertises unasked every few minutes.
package ra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/service"
	"github.com/infrad/infrad/pkg/site"
)

// Options configure a Service.
type Options struct {
	Site     *config.Site          // validated; non-nil
	IPAM     *ipam.IPAM            // non-nil: the subnets, as the site has them now
	Registry prometheus.Registerer // nil: no metrics
	Logger   *slog.Logger          // nil: slog.Default()
}

// The protocol's times (RFC 4861 §6.2.1, §10): unasked advertisements every
// maxInterval to a third of it, the first few sooner; an answer to a solicitation
// waits up to maxDelay, and multicast advertisements are minGap apart.
const (
	maxInterval     = 600 * time.Second
	initialInterval = 16 * time.Second
	initialCount    = 3
	maxDelay        = 500 * time.Millisecond
	minGap          = 3 * time.Second
	routerLifetime  = 1800 * time.Second
	// The prefix's lifetimes, as radvd's defaults; the DNS options' are three times
	// the longest interval (RFC 8106 §5.1).
	validLifetime     = 24 * time.Hour
	preferredLifetime = 4 * time.Hour
	dnsLifetime       = 3 * maxInterval
)

// Service is the router advertiser. It is a service.Service.
type Service struct {
	log    *slog.Logger
	ipam   *ipam.IPAM
	site   atomic.Pointer[config.Site]
	health service.Tracker
	sent   *prometheus.CounterVec

	mu   sync.Mutex
	stop context.CancelFunc // nil: stopped
	done sync.WaitGroup
}

// New returns a stopped Service.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Service{log: opts.Logger, ipam: opts.IPAM,
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infrad_ra_sent_total",
			Help: "Router advertisements sent, by why: unasked or solicited."}, []string{"why"})}
	s.site.Store(opts.Site)
	if opts.Registry != nil {
		opts.Registry.MustRegister(s.sent)
	}
	return s
}

// Name is "ra".
func (s *Service) Name() string { return "ra" }

// Start advertises on each of DHCP's interfaces, from a loop per interface that opens
// its NDP socket once a subnet asks for advertisements and the interface has its
// link-local address (an interface just up, or a subnet made through the API later:
// it tries every few seconds, the service degraded while it cannot), and closes it
// when none asks any more. A site without IPv6 opens nothing.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		return nil
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	s.health.Reset()
	for _, name := range s.site.Load().DHCP.Interfaces {
		s.done.Add(1)
		go func() { defer s.done.Done(); s.run(runCtx, name) }()
	}
	return nil
}

// retry is how often an interface that cannot advertise yet is tried again, and how
// often a socket no subnet wants any more is looked at.
const retry = 2 * time.Second

// run advertises on the interface called name until ctx ends.
func (s *Service) run(ctx context.Context, name string) {
	for ctx.Err() == nil {
		if !s.wanted() {
			s.health.Clear(name)
			sleep(ctx, retry)
			continue
		}
		l, err := s.open(name)
		if err != nil {
			s.health.Degrade(name, err.Error())
			sleep(ctx, retry)
			continue
		}
		s.health.Clear(name)
		s.log.Info("router advertisements", "interface", name, "from", l.from)
		s.serve(ctx, l)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// wanted reports whether a subnet asks for router advertisements.
func (s *Service) wanted() bool {
	return slices.ContainsFunc(s.ipam.Model().Subnets(), func(sn site.Subnet) bool { return sn.RA != nil })
}

// open opens the NDP socket of the interface called name, on its link-local address,
// listening for router solicitations.
func (s *Service) open(name string) (*link, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("router advertisements on %s: %w", name, err)
	}
	c, ll, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, fmt.Errorf("router advertisements on %s (it needs its IPv6 link-local address): %w", name, err)
	}
	if err := c.JoinGroup(netip.MustParseAddr("ff02::2")); err != nil { // all routers: solicitations
		c.Close()
		return nil, fmt.Errorf("router advertisements on %s: join ff02::2: %w", name, err)
	}
	return &link{ifi: ifi, conn: c, from: ll}, nil
}

// serve advertises on l until ctx ends, its socket fails, or no subnet wants it.
func (s *Service) serve(ctx context.Context, l *link) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { s.solicitations(ctx, l); cancel() })
	s.advertise(ctx, l) // closes l's socket as it ends, which ends the solicitations' read
	wg.Wait()
}

// Stop closes the sockets and waits for their loops.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop == nil {
		return nil
	}
	s.stop()
	s.stop = nil
	s.done.Wait()
	return nil
}

// Health reports an interface it cannot advertise on (degraded: the others go on).
func (s *Service) Health() service.Health { return s.health.Health() }

// Reload takes a new site: the subnets and their settings at the next advertisement;
// new DHCP interfaces by restarting the service (a restart that fails leaves it
// failed, for the Manager to retry).
func (s *Service) Reload(ctx context.Context, site *config.Site) error {
	old := s.site.Swap(site)
	s.mu.Lock()
	running := s.stop != nil
	s.mu.Unlock()
	if !running || slices.Equal(old.DHCP.Interfaces, site.DHCP.Interfaces) {
		return nil
	}
	s.Stop(ctx)
	if err := s.Start(ctx); err != nil {
		s.health.Fail("reload", "router advertisements did not start on the reloaded interfaces: "+err.Error())
		return err
	}
	return nil
}

// link is one interface advertised on.
type link struct {
	ifi  *net.Interface
	conn *ndp.Conn
	from netip.Addr // its link-local address

	mu   sync.Mutex
	last time.Time // the last multicast advertisement
}

// advertise sends unasked advertisements until ctx ends or no subnet wants them:
// the first initialCount every initialInterval at most, then every maxInterval/3 to
// maxInterval. It closes l's socket as it returns.
func (s *Service) advertise(ctx context.Context, l *link) {
	defer l.conn.Close()
	next := time.Now()
	for n := 0; ; {
		if time.Now().After(next) {
			s.send(l, "unasked")
			wait := maxInterval/3 + rand.N(maxInterval*2/3)
			if n < initialCount {
				wait = min(wait, rand.N(initialInterval)+time.Second)
			}
			next, n = time.Now().Add(wait), n+1
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(retry, time.Until(next))):
		}
		if !s.wanted() {
			return
		}
	}
}

// solicitations answers each router solicitation with a multicast advertisement,
// after a random delay, at most one every minGap.
func (s *Service) solicitations(ctx context.Context, l *link) {
	for ctx.Err() == nil {
		m, _, _, err := l.conn.ReadFrom()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("router solicitations", "interface", l.ifi.Name, "err", err)
			}
			return // the loop opens the socket again
		}
		if _, ok := m.(*ndp.RouterSolicitation); !ok {
			continue
		}
		l.mu.Lock()
		wait := rand.N(maxDelay)
		if next := l.last.Add(minGap); time.Until(next) > wait {
			wait = time.Until(next)
		}
		l.mu.Unlock()
		time.AfterFunc(wait, func() {
			if ctx.Err() == nil {
				s.send(l, "solicited")
			}
		})
	}
}

// send multicasts the advertisement of l's subnets to all nodes, when it has any.
func (s *Service) send(l *link, why string) {
	ra := s.advertisement(l)
	if ra == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.conn.WriteTo(ra, nil, netip.IPv6LinkLocalAllNodes()); err != nil {
		s.health.Degrade(l.ifi.Name, "sending a router advertisement: "+err.Error())
		s.log.Warn("router advertisement", "interface", l.ifi.Name, "err", err)
		return
	}
	s.health.Clear(l.ifi.Name)
	l.last = time.Now()
	s.sent.WithLabelValues(why).Inc()
}

// advertisement is what l says: the subnets that ask for advertisements and that l
// has an address in, each as a prefix for SLAAC; infrad's DNS at those addresses,
// where it listens on them; the domain; the M and O flags of their DHCPv6; and a
// router lifetime when one of them says infrad is the router. nil: no subnet of l
// asks.
func (s *Service) advertisement(l *link) *ndp.RouterAdvertisement {
	addrs := service.Addrs(l.ifi)
	cfg := s.site.Load()
	ra := &ndp.RouterAdvertisement{CurrentHopLimit: 64}
	var dnsServers []netip.Addr
	router := false
	for _, sn := range s.ipam.Model().Subnets() {
		if sn.RA == nil || !sn.CIDR.Addr().Is6() {
			continue
		}
		own := slices.DeleteFunc(slices.Clone(addrs), func(a netip.Addr) bool { return !sn.CIDR.Contains(a) }) // l's in the subnet
		if len(own) == 0 {
			continue
		}
		router = router || sn.RA.Router
		// M and O say what DHCPv6 gives on the link (RFC 4861 §4.2).
		ra.ManagedConfiguration = ra.ManagedConfiguration || sn.DHCP6 == site.DHCP6Stateful
		ra.OtherConfiguration = ra.OtherConfiguration || sn.DHCP6 != ""
		ra.Options = append(ra.Options, &ndp.PrefixInformation{
			PrefixLength:                   uint8(sn.CIDR.Bits()),
			OnLink:                         true,
			AutonomousAddressConfiguration: sn.CIDR.Bits() == 64, // SLAAC makes /64 addresses only
			ValidLifetime:                  validLifetime,
			PreferredLifetime:              preferredLifetime,
			Prefix:                         sn.CIDR.Addr(),
		})
		for _, a := range own {
			if cfg.DNS.AnswersAt(a) {
				dnsServers = append(dnsServers, a)
			}
		}
	}
	if len(ra.Options) == 0 {
		return nil
	}
	if router {
		ra.RouterLifetime = routerLifetime
	}
	if len(dnsServers) > 0 {
		ra.Options = append(ra.Options, &ndp.RecursiveDNSServer{Lifetime: dnsLifetime, Servers: slices.Compact(dnsServers)},
			&ndp.DNSSearchList{Lifetime: dnsLifetime, DomainNames: []string{strings.TrimSuffix(string(cfg.Domain), ".")}})
	}
	if len(l.ifi.HardwareAddr) > 0 {
		ra.Options = append(ra.Options, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: l.ifi.HardwareAddr})
	}
	return ra
}
