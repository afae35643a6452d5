// Package ntp serves time to the site (RFC 5905, server mode) from a loop built on
// facebook/time's packet codec and kernel receive timestamps, and says honestly where
// its time comes from: a co-located chronyd, else its own watch of the upstream
// servers, else the local clock at a configured stratum, else nothing (leap 3,
// stratum 16). infrad never steers the clock.
package ntp

import (
	"context"
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

	mu     sync.Mutex // guards what follows
	listen []netip.AddrPort
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
	s := &Service{log: opts.Logger, interval: opts.Interval, metrics: newMetrics(opts.Registry)}
	s.setSite(opts.Site)
	s.state.Store(unsynchronised("not assessed yet", nil))
	return s
}

func (s *Service) setSite(site *config.Site) {
	cfg := site.NTP
	s.cfg.Store(&cfg)
	s.limit.Store(ratelimit.New[netip.Addr](cfg.RateLimit, s.metrics.evicted))
	s.listen = cfg.Listen
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
		conn, err := listen(l)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return err
		}
		conns = append(conns, conn)
	}
	s.assess(ctx)
	loopCtx, cancel := context.WithCancel(context.Background())
	s.stop, s.conns = cancel, conns
	s.closing.Store(false)
	s.health.Reset()
	for _, c := range conns {
		s.loops.Go(func() { s.serve(c) })
		s.log.Info("ntp listening", "addr", c.LocalAddr().String())
	}
	s.loops.Go(func() { s.track(loopCtx) })
	return nil
}

// listen binds a UDP socket with kernel receive timestamps.
func listen(addr netip.AddrPort) (*net.UDPConn, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("ntp listen %s: %w", addr, err)
	}
	fd, err := timestamp.ConnFd(conn)
	if err == nil {
		err = timestamp.EnableSWTimestampsRx(fd)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ntp listen %s: kernel timestamps: %w", addr, err)
	}
	return conn, nil
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
// changed listen addresses are rebound.
func (s *Service) Reload(site *config.Site) error {
	s.mu.Lock()
	running := s.stop != nil
	changed := !slices.Equal(s.listen, site.NTP.Listen)
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
