// Package ca is the site's ACME certificate authority: step-ca's authority embedded
// (smallstep/certificates), a root and an intermediate of its own under data_dir/ca,
// the ACME server mounted on chi, and challenge validation that resolves names through
// infrad's own DNS, so that http-01, dns-01 and tls-alpn-01 work on a site with no
// other resolver.
package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/smallstep/certificates/acme"
	acmeapi "github.com/smallstep/certificates/acme/api"
	acmenosql "github.com/smallstep/certificates/acme/db/nosql"
	"github.com/smallstep/certificates/api/render"
	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"
	"github.com/smallstep/nosql"
	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/x509util"

	infradconfig "github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/pki"
	"github.com/infrad/infrad/pkg/service"
	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

// Options configure a Service.
type Options struct {
	Site     *infradconfig.Site // validated; non-nil
	Resolver netip.AddrPort     // the DNS server that answers the site's names: infrad's own
	// Synced says whether infrad's own time can be trusted, and if not, why. The CA
	// issues nothing while it cannot: a certificate's validity is a statement of time.
	// nil: always.
	Synced func() (bool, string)
	// Quorum says whether this node's writes can commit (a cluster's majority is in
	// reach): every ACME step writes (a nonce, an order), so the CA answers 503 while
	// it cannot. nil: always.
	Quorum   func() bool
	Registry prometheus.Registerer // nil: no metrics
	Logger   *slog.Logger          // nil: slog.Default()
	Store    *store.Store          // non-nil: the CA's tables are read here
	IPAM     *ipam.IPAM            // non-nil: the write path the CA's tables are written through
	Timeouts service.HTTPTimeouts
}

// Service is the CA. It is a service.Service.
type Service struct {
	log      *slog.Logger
	site     atomic.Pointer[infradconfig.Site]
	health   service.Tracker
	resolver netip.AddrPort
	synced   func() (bool, string)
	quorum   func() bool
	timeouts service.HTTPTimeouts
	metrics  *collector
	db       *storeDB

	mu    sync.Mutex // guards what follows
	auth  *authority.Authority
	acme  acme.DB // the ACME tables: accounts, orders, EAB keys
	root  *x509.Certificate
	inter *x509.Certificate
	srv   *http.Server
}

// New returns a stopped CA.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Quorum == nil {
		opts.Quorum = func() bool { return true }
	}
	if opts.Synced == nil {
		opts.Synced = func() (bool, string) { return true, "" }
	}
	s := &Service{log: opts.Logger, resolver: opts.Resolver, synced: opts.Synced, quorum: opts.Quorum, timeouts: opts.Timeouts,
		db: &storeDB{store: opts.Store, ipam: opts.IPAM}}
	s.site.Store(opts.Site)
	s.metrics = newCollector(s)
	if opts.Registry != nil {
		opts.Registry.MustRegister(s.metrics)
	}
	return s
}

// Name is "ca".
func (s *Service) Name() string { return "ca" }

// Start loads (or makes) the root and intermediate, opens the authority and serves
// ACME over HTTPS on ca.listen.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	site := s.site.Load()
	dir := filepath.Join(site.DataDir, "ca")
	caName := strings.TrimSuffix(string(site.CA.Name), ".")
	root, inter, err := pki.LoadOrCreate(dir, caName, time.Now())
	if err != nil {
		return err
	}
	base := baseURL(site.CA.Name, site.CA.Listen.Port())
	if inter, err = pki.WithURLs(dir, root, inter, base+rootCRLPath, base+rootPath); err != nil {
		return err
	}
	auth, err := s.authority(dir, base, root, inter)
	if err != nil {
		return err
	}
	acmeDB, err := acmenosql.New(auth.GetDatabase().(nosql.DB))
	if err != nil {
		auth.Shutdown()
		return fmt.Errorf("acme database: %w", err)
	}
	own := &ownCert{inter: inter, name: caName, listen: site.CA.Listen.Addr()}
	if _, err := own.get(nil); err != nil {
		auth.Shutdown()
		return err
	}
	ln, err := tls.Listen("tcp", site.CA.Listen.String(), &tls.Config{GetCertificate: own.get, MinVersion: tls.VersionTLS12})
	if err != nil {
		auth.Shutdown()
		return fmt.Errorf("ca listen %s: %w", site.CA.Listen, err)
	}
	if err := useHTTP01Port(site.CA.HTTP01Port); err != nil {
		ln.Close()
		auth.Shutdown()
		return err
	}
	client := newClient(s.resolver)
	linker := acme.NewLinker(caName, "acme")
	r := chi.NewRouter()
	r.Route("/acme", func(r chi.Router) {
		r.Use(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				c := acme.NewContext(req.Context(), acmeDB, client, linker, nil)
				next.ServeHTTP(w, req.WithContext(authority.NewContext(c, auth)))
			})
		}, readBody, s.metrics.countFailures, s.quorumGuard, s.timeGuard, s.zoneGuard, s.challengeGuard(acmeDB, client))
		acmeapi.Route(r)
	})
	r.Get(issuerPath, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/pkix-cert")
		w.Write(inter.Cert.Raw)
	})
	r.Get(rootPath, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/pkix-cert")
		w.Write(root.Cert.Raw)
	})
	rootCRL := &rootCRL{root: root}
	r.Get(rootCRLPath, func(w http.ResponseWriter, req *http.Request) {
		der, err := rootCRL.get(time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(der)
	})
	r.Get(crlPath, func(w http.ResponseWriter, req *http.Request) {
		crl, err := auth.GetCertificateRevocationList()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(crl.Data)
	})
	r.Get("/roots.pem", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Cert.Raw}))
	})
	srv := &http.Server{Handler: r, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	s.timeouts.Apply(srv)
	s.srv, s.auth, s.acme, s.root, s.inter = srv, auth, acmeDB, root.Cert, inter.Cert
	s.health.Reset()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("ca listener stopped", "err", err)
			s.health.Fail("listen", "the CA's listener stopped: "+err.Error())
		}
	}()
	s.log.Info("ca listening", "addr", ln.Addr().String(), "directory", DirectoryURL(s.site.Load().CA.Name, s.site.Load().CA.Listen.Port()))
	return nil
}

// DirectoryURL is the ACME directory of the CA called name that listens on port: the
// port is in the URL unless it is 443.
func DirectoryURL(name site.Name, port uint16) string {
	return baseURL(name, port) + "/acme/acme/directory"
}

// baseURL is where the CA called name that listens on port answers.
func baseURL(name site.Name, port uint16) string {
	host := strings.TrimSuffix(string(name), ".")
	if port != 443 && port != 0 {
		host = net.JoinHostPort(host, strconv.Itoa(int(port)))
	}
	return "https://" + host
}

// The paths of the CA's listener that relying parties fetch: the CRL, and the
// intermediate that issued a certificate (DER, as RFC 5280 §4.2.2.1 asks), which the
// certificates name; the root's CRL and the root, which the intermediate names.
const (
	crlPath     = "/crl"
	issuerPath  = "/intermediate.crt"
	rootCRLPath = "/root.crl"
	rootPath    = "/root.crt"
)

// rootCRL is the root's CRL, made when first asked for and again at half its life.
type rootCRL struct {
	root pki.Pair
	mu   sync.Mutex
	der  []byte
	made time.Time
}

func (c *rootCRL) get(now time.Time) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.der == nil || now.Sub(c.made) > pki.RootCRLLife/2 {
		der, err := pki.RootCRL(c.root, now)
		if err != nil {
			return nil, err
		}
		c.der, c.made = der, now
	}
	return c.der, nil
}

// leafTemplate is step-ca's default leaf template, with the CRL distribution point
// and the issuer's URL (AIA) that let a relying party check a certificate from what
// it names.
const leafTemplate = `{
	"subject": {{ toJson .Subject }},
	"sans": {{ toJson .SANs }},
{{- if typeIs "*rsa.PublicKey" .Insecure.CR.PublicKey }}
	"keyUsage": ["keyEncipherment", "digitalSignature"],
{{- else }}
	"keyUsage": ["digitalSignature"],
{{- end }}
	"extKeyUsage": ["serverAuth", "clientAuth"],
	"crlDistributionPoints": [{{ toJson .crl }}],
	"issuingCertificateURL": [{{ toJson .issuer }}]
}`

// caTables are the tables step-ca's db.New would create.
var caTables = []string{"x509_certs", "x509_certs_data", "revoked_x509_certs", "x509_crl", "revoked_ssh_certs",
	"used_ott", "ssh_certs", "ssh_hosts", "ssh_users", "ssh_host_principals"}

// authority embeds step-ca with one ACME provisioner that signs only names in the
// site's zones, for cert_lifetime.
func (s *Service) authority(dir, base string, root, inter pki.Pair) (*authority.Authority, error) {
	migrated, err := s.db.migrate(dir)
	if err != nil {
		return nil, err
	}
	if migrated {
		s.log.Info("the CA's separate database is now in the store", "old", filepath.Join(dir, "db.migrated"))
	}
	var create []ipam.TableOp
	for _, t := range caTables {
		create = append(create, ipam.TableOp{Op: "create", Table: t})
	}
	if _, err := s.db.write(create...); err != nil {
		return nil, fmt.Errorf("ca database: %w", err)
	}
	database := &db.DB{DB: s.db}
	site := s.site.Load()
	lifetime := site.CA.CertLifetime
	prov := &provisioner.ACME{
		ID:         provisionerID,
		Type:       provisioner.TypeACME.String(),
		Name:       "acme",
		RequireEAB: site.CA.ExternalAccountBinding,
		Challenges: []provisioner.ACMEChallenge{provisioner.HTTP_01, provisioner.DNS_01, provisioner.TLS_ALPN_01},
		Claims: &provisioner.Claims{
			MinTLSDur:     &provisioner.Duration{Duration: 5 * time.Minute},
			MaxTLSDur:     &provisioner.Duration{Duration: lifetime},
			DefaultTLSDur: &provisioner.Duration{Duration: lifetime},
		},
		// Which names: zoneGuard (step-ca's policy would allow one label below a zone).
		Options: &provisioner.Options{X509: &provisioner.X509Options{
			Template:     leafTemplate,
			TemplateData: mustJSON(map[string]string{"crl": base + crlPath, "issuer": base + issuerPath}),
		}},
	}
	auth, err := authority.NewEmbedded(
		authority.WithConfig(&config.Config{
			AuthorityConfig: &config.AuthConfig{Provisioners: provisioner.List{prov}, DisableIssuedAtCheck: true},
			CRL: &config.CRLConfig{Enabled: true, GenerateOnRevoke: true, IDPurl: base + crlPath,
				CacheDuration: &provisioner.Duration{Duration: 24 * time.Hour}},
		}),
		authority.WithX509RootCerts(root.Cert),
		authority.WithX509Signer(inter.Cert, inter.Key),
		authority.WithDatabase(database),
		authority.WithQuietInit(),
	)
	if err != nil {
		database.Shutdown()
		return nil, fmt.Errorf("ca authority: %w", err)
	}
	return auth, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// ServerTLS is a TLS configuration for another of infrad's listeners (the API on a
// non-loopback address): a certificate for names (and listen, when it is a specific
// address) from the site's intermediate, made on first use and anew before it expires.
// It reads (or makes) the CA's keys under dataDir, and needs no running CA.
func ServerTLS(dataDir string, caName site.Name, names []string, listen netip.Addr) (*tls.Config, error) {
	_, inter, err := pki.LoadOrCreate(filepath.Join(dataDir, "ca"), strings.TrimSuffix(string(caName), "."), time.Now())
	if err != nil {
		return nil, err
	}
	own := &ownCert{inter: inter, name: names[0], extra: names[1:], listen: listen}
	if _, err := own.get(nil); err != nil {
		return nil, err
	}
	return &tls.Config{GetCertificate: own.get, MinVersion: tls.VersionTLS12}, nil
}

// ownCert is a listener's own certificate, made anew when it has less than ten days to
// live: infrad runs for months, its certificates for thirty days.
type ownCert struct {
	inter  pki.Pair
	name   string
	extra  []string // more DNS names
	listen netip.Addr

	mu   sync.Mutex
	cert *tls.Certificate
}

func (o *ownCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cert == nil || time.Until(o.cert.Leaf.NotAfter) < 10*24*time.Hour {
		c, err := serverCert(o.inter, o.name, o.extra, o.listen)
		if err != nil {
			return nil, err
		}
		o.cert = &c
	}
	return o.cert, nil
}

// serverCert is the CA listener's own certificate for name (and its listen address,
// when it is a specific one), signed by the intermediate.
func serverCert(inter pki.Pair, name string, extra []string, listen netip.Addr) (tls.Certificate, error) {
	key, err := keyutil.GenerateDefaultSigner()
	if err != nil {
		return tls.Certificate{}, err
	}
	sans := append([]string{name}, extra...)
	if listen.IsValid() && !listen.IsUnspecified() {
		sans = append(sans, listen.String())
	}
	cr, err := x509util.CreateCertificateRequest(name, sans, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	c, err := x509util.NewCertificate(cr, x509util.WithTemplate(x509util.DefaultLeafTemplate, x509util.CreateTemplateData(name, sans)))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := c.GetCertificate()
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Minute), now.Add(30*24*time.Hour)
	cert, err := x509util.CreateCertificate(tmpl, inter.Cert, key.Public(), inter.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw, inter.Cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// timeGuard refuses to finalize an order, which is where a certificate is signed,
// while infrad's time cannot be trusted, with an ACME error that says so.
// quorumGuard refuses every ACME request but the directory with a 503 while this node
// of a cluster cannot reach a majority: each would write (a nonce, an account, an
// order), and fail as an internal error.
func (s *Service) quorumGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/directory") && !s.quorum() {
			msg := "this node cannot reach a majority of its cluster, so it issues nothing: ask another node"
			e := acme.NewError(acme.ErrorServerInternalType, "%s", msg)
			e.Detail, e.Status = msg, http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "10")
			render.Error(w, r, e)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Service) timeGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/finalize") {
			if ok, why := s.synced(); !ok {
				msg := "infrad issues no certificate while its clock is not synchronised: " + why
				e := acme.NewError(acme.ErrorServerInternalType, "%s", msg)
				e.Detail, e.Status = msg, http.StatusServiceUnavailable // the type's own detail says nothing
				render.Error(w, r, e)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Stop closes the listener and the authority.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	err = errors.Join(err, s.auth.Shutdown())
	s.srv, s.auth, s.acme = nil, nil, nil
	return err
}

// Health reports a listener that stopped, and a reload that could not restart the CA.
func (s *Service) Health() service.Health { return s.health.Health() }

// Reload takes a new site. What the authority is built from (ca.*, the zones it signs
// for) takes effect by restarting the CA: its listener is closed and opened again with
// an authority made from the new site. A restart that fails leaves the CA failed, to
// be retried by the Manager.
func (s *Service) Reload(ctx context.Context, site *infradconfig.Site) error {
	old := s.site.Swap(site)
	if reflect.DeepEqual(old.CA, site.CA) && old.Domain == site.Domain && slices.Equal(old.DNS.Zones, site.DNS.Zones) {
		return nil
	}
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if !running {
		return nil
	}
	s.log.Info("the CA's settings changed: restarting it")
	if err := s.Stop(ctx); err != nil {
		s.log.Warn("the CA did not stop cleanly", "err", err)
	}
	if err := s.Start(ctx); err != nil {
		s.health.Fail("reload", "the CA did not start with the reloaded site: "+err.Error())
		return err
	}
	return nil
}

// RootPEM is the root certificate, PEM-encoded; nil before the first Start.
func (s *Service) RootPEM() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.root.Raw})
}

// client validates challenges, resolving every name through resolver, never the
// system's: a site's names are in infrad's DNS, and the site may have no other.
type client struct {
	resolver *net.Resolver
	dialer   *net.Dialer
	http     *http.Client
}

func newClient(dnsServer netip.AddrPort) *client {
	c := &client{dialer: &net.Dialer{Timeout: 10 * time.Second}}
	c.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return c.dialer.DialContext(ctx, network, dnsServer.String())
	}}
	c.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: c.dial}}
	return c
}

// dial resolves addr's host through the site's DNS and connects to it.
func (c *client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, err := c.resolver.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	var last error
	for _, ip := range ips {
		conn, err := c.dialer.DialContext(ctx, network, net.JoinHostPort(ip, port))
		if err == nil {
			return conn, nil
		}
		last = err
	}
	return nil, last
}

func (c *client) Get(url string) (*http.Response, error) { return c.http.Get(url) }

func (c *client) LookupTxt(name string) ([]string, error) {
	return c.resolver.LookupTXT(context.Background(), name)
}

func (c *client) TLSDial(network, addr string, cfg *tls.Config) (*tls.Conn, error) {
	conn, err := c.dial(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(conn, cfg)
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}
