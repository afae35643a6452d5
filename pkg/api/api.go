// Package api serves infrad's REST API on chi: health and readiness for probes,
// metrics for Prometheus, and under /api/v1 the token-protected resources. Handlers
// are thin (decode, one domain call, encode) and every error leaves through one
// renderer as {"error":{"code","message"}}.
package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/pkg/export"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/ratelimit"
	"github.com/infrad/infrad/pkg/service"
	"github.com/infrad/infrad/pkg/sshca"
	"github.com/infrad/infrad/web"
)

// Options configure a Server.
type Options struct {
	Listen netip.AddrPort
	Token  string // non-empty: every /api/v1 request must carry it
	// DataDir is where the token's file is, rewritten when it is rotated; "": it cannot be.
	DataDir string
	Status  func() []service.Status // the readiness table in start order; non-nil
	// RestartNeeded names the site-file keys the last reload could not apply; nil: none.
	RestartNeeded func() []string
	IPAM          *ipam.IPAM                     // non-nil
	Leases        Leases                         // non-nil: the DHCP service
	Time          Time                           // non-nil: the NTP service
	Signer        Signer                         // non-nil: the DNS service
	Boot          Boot                           // nil: no network boot (the profiles are none)
	CA            CA                             // non-nil: the certificate authority
	SSH           *sshca.CA                      // non-nil: the SSH certificate authority
	Metrics       *prometheus.Registry           // non-nil: the services' metrics, served with the process's
	Backup        func(io.Writer) (int64, error) // non-nil: a hot, consistent copy of the store
	Cluster       Cluster                        // non-nil
	// Plan says what reloading a site file (its name and contents) would change. non-nil.
	Plan      func(name string, data []byte) ([]ipam.Change, error)
	Site      func() SiteInfo // the running site; non-nil
	Build     BuildInfo
	Started   time.Time    // when the daemon started, for uptime
	TLS       *tls.Config  // nil: plain HTTP, which is for loopback only
	RateLimit int          // /api/v1 requests a second per client address; 0: no limit
	Logger    *slog.Logger // nil: slog.Default()
	Timeouts  service.HTTPTimeouts
}

// BuildInfo says which infrad this is.
type BuildInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
}

// SiteInfo says which site file is running.
type SiteInfo struct {
	Source     string         `json:"source"`
	Domain     string         `json:"domain"`
	TTL        uint32         `json:"ttl"`             // dns.ttl: what a record without its own is served at
	Zones      []string       `json:"zones,omitempty"` // dns.zones, without their dots
	Forwarders []string       `json:"forwarders,omitempty"`
	LeaseTime  int            `json:"dhcp_lease_time"` // seconds
	LoadedAt   time.Time      `json:"loaded_at"`
	Kubernetes export.Cluster `json:"kubernetes"` // what infrad export kubeadm writes
	MetalLB    struct {
		BGP *export.BGP `json:"bgp,omitempty"`
	} `json:"metallb"`
	NTS *export.NTS `json:"nts,omitempty"` // nil: NTS is off
	// Servers are the addresses nodes reach infrad's DNS and NTP at: dns.advertise,
	// or a cluster's serving nodes. Empty when no such address is known.
	Servers []netip.Addr `json:"servers,omitempty"`
}

// Server is the API listener. It is a service.Service.
type Server struct {
	opts    Options
	log     *slog.Logger
	handler http.Handler

	limit     atomic.Pointer[rateLimit] // api.rate_limit, swapped on reload
	fileToken atomic.Pointer[string]    // the data directory's token, swapped when rotated
	rotating  sync.Mutex                // one rotation at a time
	evicted   prometheus.Counter        // clients the limit forgot to make room

	mu       sync.Mutex
	srv      *http.Server // nil when stopped
	serveErr error        // why Serve ended on its own
}

// rateLimit is the /api/v1 limit per client, with the rate it was made for.
type rateLimit struct {
	rate    int
	limiter *ratelimit.Limiter[netip.Addr]
}

// SetRateLimit applies a reloaded api.rate_limit at once.
func (s *Server) SetRateLimit(rate int) {
	if old := s.limit.Load(); old != nil && old.rate == rate {
		return
	}
	s.limit.Store(&rateLimit{rate: rate, limiter: ratelimit.New[netip.Addr](rate, s.evicted)})
}

// New builds the router; Start binds the listener.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, log: opts.Logger}
	s.fileToken.Store(&opts.Token)
	s.handler = s.routes()
	return s
}

func (s *Server) routes() http.Handler {
	reg := s.opts.Metrics
	s.evicted = ratelimit.Evictions("api")
	reg.MustRegister(serviceCollector{s.opts.Status}, ipam.NewCollector(s.opts.IPAM), s.evicted)

	r := chi.NewRouter()
	r.Use(s.recoverer, s.logRequests, middleware.GetHead) // HEAD is answered where GET is
	r.NotFound(s.handle(func(w http.ResponseWriter, req *http.Request) error {
		return errorf(http.StatusNotFound, "not_found", "no route %s", req.URL.Path)
	}))
	r.MethodNotAllowed(s.handle(func(w http.ResponseWriter, req *http.Request) error {
		allowed := allowedMethods(r, req.URL.Path)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		return errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s: %s is", req.Method, req.URL.Path, strings.Join(allowed, ", "))
	}))
	ui := http.StripPrefix("/ui/", http.FileServerFS(web.FS()))
	r.Method(http.MethodGet, "/ui/*", ui) // the page asks for its data with the token; its files are open
	r.Get("/ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently).ServeHTTP)
	r.Get("/", http.RedirectHandler("/ui/", http.StatusFound).ServeHTTP)
	r.Get("/healthz", s.handle(s.healthz))
	r.Get("/readyz", s.handle(s.readyz))
	r.Method(http.MethodGet, "/metrics", metricsHandler(reg))
	r.Get("/api/v1/ca/root.pem", s.handle(s.rootPEM)) // open: it is what clients come to trust
	r.Get("/api/v1/ca/crl", s.handle(s.crl))          // open: relying parties fetch it
	r.Get("/api/v1/ca/ssh", s.handle(s.sshKeys))      // open: what clients and sshd come to trust
	r.Get("/api/v1/ca/ssh/krl", s.handle(s.sshKRL))   // open: every sshd fetches it
	r.Group(func(r chi.Router) {
		r.Use(s.limitRate)
		r.Post("/api/v1/ca/ssh/hosts/{name}", s.handle(s.signHost)) // an admin's token, or the host's enrolment token
		r.Post("/api/v1/ca/ssh/renew", s.handle(s.renewHost))       // the certificate's key is the proof
	})
	s.SetRateLimit(s.opts.RateLimit)
	r.Route("/api/v1", func(r chi.Router) {
		r.Use(s.limitRate, s.requireToken)
		r.Group(func(r chi.Router) { // reads need a token that reads, changes one that writes
			r.Use(s.byMethod)
			r.Get("/status", s.handle(s.status))
			r.Get("/openapi.json", s.handle(s.openapi))
			s.ipamRoutes(r)
			r.Get("/dhcp/leases", s.handle(s.listLeases))
			r.Delete("/dhcp/leases/{ip}", s.handle(s.releaseLease))
			r.Post("/dhcp/leases/{ip}/reserve", s.handle(s.pinLease))
			r.Get("/dhcp/events", s.handle(s.activity))
			r.Get("/changes", s.handle(s.changes))
			r.Get("/ntp", s.handle(s.ntpStatus))
			r.Get("/boot", s.handle(s.bootStatus))
			r.Get("/dns/dnssec", s.handle(s.dnssecStatus))
			r.Get("/ca", s.handle(s.caInfo))
			r.Get("/ca/certificates", s.handle(s.caCertificates))
			r.Get("/ca/ssh/certificates", s.handle(s.sshCertificates))
			r.Get("/cluster", s.handle(s.clusterStatus))
		})
		// A plan changes nothing: reading the site is enough.
		r.With(s.need(ipam.ScopeRead)).Post("/plan", s.handle(s.plan))
		// A user certificate names only what the token allows (ssh_principals).
		r.With(s.need(ipam.ScopeRead)).Post("/ca/ssh/users", s.handle(s.signUser))
		r.Group(func(r chi.Router) { // what reveals key material or controls who gets in
			r.Use(s.need(ipam.ScopeAdmin))
			r.Get("/backup", s.handle(s.backup))
			r.Get("/tokens", s.handle(s.listTokens))
			r.Post("/tokens", s.handle(s.createToken))
			r.Delete("/tokens/{name}", s.handle(s.revokeToken))
			r.Post("/tokens/api-token/rotate", s.handle(s.rotateFileToken))
			r.Delete("/cluster/nodes/{name}", s.handle(s.removeNode))
			r.Post("/ca/ssh/hosts/{name}/enrol", s.handle(s.enrolHost))
			r.Get("/ca/eab", s.handle(s.listEAB))
			r.Post("/ca/eab", s.handle(s.createEAB))
			r.Delete("/ca/eab/{id}", s.handle(s.deleteEAB))
			r.Post("/dns/dnssec/ksk/roll", s.handle(s.rollKSK))
			r.Post("/dns/dnssec/ksk/ds", s.handle(s.confirmDS))
			r.Post("/ca/ssh/revoke", s.handle(s.revokeSSH))
		})
	})
	return r
}

// allowedMethods are the methods routes answers on path, for a 405's Allow header.
func allowedMethods(routes chi.Routes, path string) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := m
		if m == http.MethodHead {
			probe = http.MethodGet // GetHead answers HEAD where GET is
		}
		if routes.Match(chi.NewRouteContext(), probe, path) {
			out = append(out, m)
		}
	}
	return out
}

// limitRate answers 429 to a client past its rate, before anything else is done.
func (s *Server) limitRate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client, _ := netip.ParseAddrPort(r.RemoteAddr)
		limit := s.limit.Load()
		if !limit.limiter.Allow(client.Addr(), time.Now()) {
			w.Header().Set("Retry-After", "1")
			s.writeError(w, r, errorf(http.StatusTooManyRequests, "rate_limited", "more than %d requests a second from %s: slow down", limit.rate, client.Addr()))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Handler is the router, for tests that serve it without a listener.
func (s *Server) Handler() http.Handler { return s.handler }

// Name is "api".
func (s *Server) Name() string { return "api" }

// Start binds the listen address and serves in the background.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Listen.String())
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.opts.Listen, err)
	}
	scheme := "http"
	if s.opts.TLS != nil {
		ln, scheme = tls.NewListener(ln, s.opts.TLS), "https"
	}
	srv := &http.Server{Handler: s.handler, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	s.opts.Timeouts.Apply(srv)
	s.srv, s.serveErr = srv, nil
	go func() {
		err := srv.Serve(ln)
		if !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api listener stopped", "err", err)
			s.mu.Lock()
			s.serveErr = err
			s.mu.Unlock()
		}
	}()
	s.log.Info("api listening", "addr", ln.Addr().String())
	// The one place the token is logged: the sign-in link a person opens (as Jupyter does).
	s.log.Info("sign in to the UI", "url", fmt.Sprintf("%s://%s/ui/#token=%s", scheme, ln.Addr(), *s.fileToken.Load()))
	return nil
}

// Stop lets requests in flight finish within ctx's deadline, then closes the rest.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
		return fmt.Errorf("shut down api: %w", err)
	}
	return nil
}

// Health reports a listener that died on its own; otherwise it defers to the Manager.
func (s *Server) Health() service.Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serveErr != nil {
		return service.Health{State: service.StateFailed, LastError: s.serveErr.Error()}
	}
	return service.Health{}
}
