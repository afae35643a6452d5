// Package ntp serves time to the site (RFC 5905, server mode) from a loop built on
// facebook/time's packet codec and kernel receive timestamps, and says honestly where
// its time comes from: a co-located chronyd, else its own watch of the upstream
// servers, else the local clock at a configured stratum, else nothing (leap 3,
// stratum 16). infrad never steers the clock.
package ntp

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/facebook/time/timestamp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/keyring"
	"github.com/infrad/infrad/pkg/ratelimit"
	"github.com/infrad/infrad/pkg/service"
)

// Options configure a Service.
type Options struct {
	Site     *config.Site          // validated; non-nil
	Registry prometheus.Registerer // non-nil
	Logger   *slog.Logger          // nil: slog.Default()
	// Interval is how often the time source is assessed and the upstreams polled;
	// 0: 16 seconds.
	Interval time.Duration
	// Keys keeps NTS's cookie keys (the site's store); NTSTLS makes the TLS
	// configuration of an NTS-KE listener on an address, with a certificate from the
	// site's CA. Both are needed for ntp.nts.
	Keys   keyring.Store
	NTSTLS func(listen netip.Addr) (*tls.Config, error)
}

// Service is the NTP service. It is a service.Service.
type Service struct {
	log      *slog.Logger
	interval time.Duration
	metrics  *metrics

	cfg     atomic.Pointer[config.NTP]
	state   atomic.Pointer[State]                         // what the hot path serves
	limit   atomic.Pointer[ratelimit.Limiter[netip.Addr]] // per client: rate_limit a second, twice that at once
	health  service.Tracker
	closing atomic.Bool // Stop is closing the sockets: a closed socket is no fault

	nts     *keystore                   // NTS's cookie keys
	ntsKeys *keyring.Keeper[cookieKeys] // nil: no store to keep them in
	ntsTLS  func(netip.Addr) (*tls.Config, error)

	mu     sync.Mutex // guards what follows
	listen []netip.AddrPort
	ntsOn  []netip.AddrPort // NTS-KE's listen addresses; none: NTS is off
	conns  []*net.UDPConn
	stop   context.CancelFunc
	loops  sync.WaitGroup
}

// New returns a stopped NTP service.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Interval == 0 {
		opts.Interval = 16 * time.Second
	}
	s := &Service{log: opts.Logger, interval: opts.Interval, metrics: newMetrics(opts.Registry),
		nts: newKeystore(), ntsTLS: opts.NTSTLS}
	if opts.Keys != nil {
		s.ntsKeys = &keyring.Keeper[cookieKeys]{Name: ringName, Store: opts.Keys, Plan: planCookieKeys,
			Use: func(r cookieKeys) {
				if err := s.nts.use(r); err != nil {
					s.log.Error("nts: the cookie keys cannot be used", "err", err)
				}
			}, Log: opts.Logger}
	}
	s.setSite(opts.Site)
	s.state.Store(unsynchronised("not assessed yet", nil))
	return s
}

func (s *Service) setSite(site *config.Site) {
	cfg := site.NTP
	s.cfg.Store(&cfg)
	s.limit.Store(ratelimit.New[netip.Addr](cfg.RateLimit, s.metrics.evicted))
	s.listen = cfg.Listen
	s.ntsOn = nil
	if cfg.NTS {
		s.ntsOn = cfg.NTSListen
	}
}

// Name is "ntp".
func (s *Service) Name() string { return "ntp" }

// Start assesses the time source once, binds every listen address and serves.
// A failed Start binds nothing.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		return nil
	}
	var conns []*net.UDPConn
	for _, l := range s.listen {
		group, stamps, err := listen(l, sockets())
		if stamps != nil {
			// (qemu-user, for one, has no SO_TIMESTAMPNS: a reply is then stamped as
			// the request is read, a little later than the kernel would have.)
			s.log.Warn("ntp: the kernel gives no receive timestamps here; requests are stamped as they are read", "addr", l.String(), "err", stamps)
		}
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return err
		}
		conns = append(conns, group...)
	}
	s.assess(ctx)
	loopCtx, cancel := context.WithCancel(context.Background())
	if err := s.startNTS(ctx, loopCtx, conns); err != nil {
		cancel()
		for _, c := range conns {
			c.Close()
		}
		return err
	}
	s.stop, s.conns = cancel, conns
	s.closing.Store(false)
	s.health.Reset()
	for _, c := range conns {
		s.loops.Go(func() { s.serve(c) })
	}
	for _, l := range s.listen {
		s.log.Info("ntp listening", "addr", l.String(), "sockets", sockets())
	}
	s.loops.Go(func() { s.track(loopCtx) })
	return nil
}

// sockets is how many sockets serve each listen address: one a CPU this process may
// use (its affinity and its cgroup's quota), up to 8. The kernel spreads clients over
// them by address (SO_REUSEPORT), and each is read by a goroutine of its own.
func sockets() int { return min(service.CPUs(), 8) }

// listen binds n UDP sockets to addr, sharing it (SO_REUSEPORT), each with kernel
// receive timestamps where the kernel gives them (stamps says why it does not: the
// serve loop then stamps a request as it reads it). The address is first bound
// alone, and released: another process's socket on it, shared or not, makes that
// fail, so infrad never silently splits a port's clients with a stranger.
func listen(addr netip.AddrPort, n int) (conns []*net.UDPConn, stamps, err error) {
	if addr.Port() != 0 {
		alone, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return nil, nil, fmt.Errorf("ntp listen %s: %w", addr, err)
		}
		alone.Close()
	}
	conns, err = service.ListenShared("udp", addr, n, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("ntp listen %s: %w", addr, err)
	}
	for _, conn := range conns {
		fd, err := timestamp.ConnFd(conn)
		if err == nil {
			err = timestamp.EnableSWTimestampsRx(fd)
		}
		if err != nil {
			stamps = err
		}
	}
	return conns, stamps, nil
}

// Stop closes every socket and ends the loops.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop == nil {
		return nil
	}
	s.closing.Store(true)
	for _, c := range s.conns {
		c.Close()
	}
	s.stop()
	s.stop, s.conns = nil, nil
	return service.Wait(ctx, &s.loops)
}

// Health is not ready while infrad's time is unsynchronised (leap 3: clients would
// get no time worth having), saying why, and failed when a socket was lost.
func (s *Service) Health() service.Health {
	if st := s.Status(); st.Leap == 3 {
		s.health.Degrade("time", "no time source: "+st.Why)
	} else {
		s.health.Clear("time")
	}
	return s.health.Health()
}

// Reload takes a new site: sources, limits and offsets apply at the next assessment;
// changed listen addresses, NTP's or NTS-KE's, are rebound.
func (s *Service) Reload(site *config.Site) error {
	s.mu.Lock()
	running := s.stop != nil
	changed := !slices.Equal(s.listen, site.NTP.Listen) || site.NTP.NTS != (s.ntsOn != nil) ||
		(site.NTP.NTS && !slices.Equal(s.ntsOn, site.NTP.NTSListen))
	s.mu.Unlock()
	if !running || !changed {
		s.mu.Lock()
		s.setSite(site)
		s.mu.Unlock()
		return nil
	}
	if err := s.Stop(context.Background()); err != nil {
		return err
	}
	s.mu.Lock()
	s.setSite(site)
	s.mu.Unlock()
	return s.Start(context.Background())
}

// Status is what infrad serves now, for the API.
func (s *Service) Status() State { return *s.state.Load() }
