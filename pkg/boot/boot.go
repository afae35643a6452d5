// Package boot serves what a machine booting from the network fetches once DHCP
// (pkg/dhcp) has pointed it here: iPXE over TFTP for PXE firmware, and over HTTP,
// without a token (a booting machine has none), its host's iPXE script, the files
// below the boot root (kernels and initrds, with ranges) and the callback its boot
// script calls once it has booted. What a machine boots follows from its host object
// and the profile it names (site.BootProfile.Script): nothing here is configured per
// machine. With no boot profiles in the site, the service binds nothing.
package boot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/iana"
	"github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/service"
	"github.com/infrad/infrad/pkg/site"
)

// Options configure the boot service.
type Options struct {
	Site     *config.Site          // validated; non-nil
	IPAM     *ipam.IPAM            // non-nil: hosts and leases, and the write path for BootHost
	Registry prometheus.Registerer // non-nil
	Logger   *slog.Logger          // nil: slog.Default()
	// Event is told of each boot step served (a script, a file, the callback), for
	// the DHCP activity view; nil: none.
	Event func(Event)
	// IPXEDir is where the box's own iPXE binaries are (Debian's ipxe package), served
	// when the boot root has none of that name; "": DefaultIPXEDir.
	IPXEDir string
}

// Event is one boot step served to a machine.
type Event struct {
	At     time.Time
	Step   string     // "tftp", "script", "file", "booted"
	Client netip.Addr // who fetched it
	MAC    site.MAC   // the machine's, when known (scripts and callbacks)
	File   string     // what it fetched; the host, for a callback
}

// DefaultIPXEDir is where Debian's ipxe package puts undionly.kpxe, ipxe.efi and
// snponly.efi.
const DefaultIPXEDir = "/usr/lib/ipxe"

// The iPXE binaries DHCP hands to PXE firmware, by the firmware's architecture (RFC
// 4578 option 93). Each is served from the boot root, else from the box's IPXEDir.
const (
	BIOSLoader  = "undionly.kpxe"  // x86 BIOS (arch 0)
	EFILoader   = "ipxe.efi"       // x86-64 UEFI (arch 7 and 9)
	ARM64Loader = "ipxe-arm64.efi" // arm64 UEFI (arch 11): no Debian package for x86 boxes has it; put one in the boot root
)

// LoaderFor is the iPXE binary for a firmware's architecture (RFC 4578 option 93,
// DHCPv6's option 61); "" when infrad has none to offer it (32-bit UEFI, 32-bit ARM).
func LoaderFor(arch iana.Arch) string {
	switch arch {
	case iana.INTEL_X86PC:
		return BIOSLoader
	case iana.EFI_X86_64, iana.EFI_BC, iana.EFI_X86_64_HTTP, iana.EFI_BC_HTTP:
		return EFILoader
	case iana.EFI_ARM64, iana.EFI_ARM64_HTTP:
		return ARM64Loader
	}
	return ""
}

// Service is the boot service: a service.Service.
type Service struct {
	log     *slog.Logger
	ipam    *ipam.IPAM
	event   func(Event)
	ipxeDir string
	metrics *metrics
	health  service.Tracker
	cfg     atomic.Pointer[config.Boot]
	domain  atomic.Pointer[site.Name]

	mu       sync.Mutex // guards what follows
	tftp     *tftp.Server
	tftpDone chan struct{}
	http     *http.Server
	root     *os.Root
	clients  map[netip.Addr]int // TFTP transfers under way, by client
	running  int                // and in all
	// fetched is where each MAC's script was last fetched from: a machine that got
	// its address from another server (a proxyDHCP site) calls back from there.
	fetched map[site.MAC]netip.Addr
}

// maxFetched bounds the script fetches remembered; past it they are forgotten at once.
const maxFetched = 4096

// New returns a stopped boot service.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.IPXEDir == "" {
		opts.IPXEDir = DefaultIPXEDir
	}
	s := &Service{log: opts.Logger, ipam: opts.IPAM, event: opts.Event, ipxeDir: opts.IPXEDir,
		metrics: newMetrics(opts.Registry), clients: map[netip.Addr]int{}, fetched: map[site.MAC]netip.Addr{}}
	b := opts.Site.Boot
	b.Root = opts.Site.BootRoot()
	s.setSite(b, opts.Site.Domain)
	return s
}

// setSite takes the boot settings b (its Root resolved) and the site's domain.
func (s *Service) setSite(b config.Boot, domain site.Name) {
	s.cfg.Store(&b)
	s.domain.Store(&domain)
}

// Name is "boot".
func (s *Service) Name() string { return "boot" }

// Start binds TFTP and the HTTP endpoint when the site has boot profiles. A failed
// Start binds nothing.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http != nil {
		return nil
	}
	s.health.Reset()
	cfg := s.cfg.Load()
	if len(cfg.Profiles) == 0 {
		return nil
	}
	if err := os.MkdirAll(cfg.Root, 0o755); err != nil {
		return fmt.Errorf("boot root: %w", err)
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return fmt.Errorf("boot root: %w", err)
	}
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(cfg.TFTPListen))
	if err != nil {
		root.Close()
		return fmt.Errorf("tftp: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.HTTPListen.String())
	if err != nil {
		root.Close()
		udp.Close()
		return fmt.Errorf("boot http: %w", err)
	}
	s.root = root
	s.tftp = tftp.NewServer(s.readFile, nil)
	s.tftp.SetTimeout(tftpTimeout)
	s.tftp.SetRetries(tftpRetries)
	s.tftp.SetBlockSize(tftpMaxBlock)
	s.tftpDone = make(chan struct{})
	go func(srv *tftp.Server, done chan struct{}) {
		defer close(done)
		if err := srv.Serve(udp); err != nil {
			s.health.Fail("tftp", err.Error())
		}
	}(s.tftp, s.tftpDone)
	s.http = &http.Server{Handler: s.handler(), ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	service.HTTPTimeouts{Read: 30 * time.Second, Write: 10 * time.Minute}.Apply(s.http)
	go func(srv *http.Server) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.health.Fail("http", err.Error())
		}
	}(s.http)
	s.checkLoaders()
	s.log.Info("boot serving", "tftp", cfg.TFTPListen, "http", cfg.HTTPListen, "root", cfg.Root, "profiles", len(cfg.Profiles))
	return nil
}

// Stop closes both listeners and waits for the transfers under way, within ctx.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv, tsrv, done, root := s.http, s.tftp, s.tftpDone, s.root
	s.http, s.tftp, s.root = nil, nil, nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	stopped := make(chan struct{})
	go func() { tsrv.Shutdown(); <-done; close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("tftp transfers still under way: %w", ctx.Err()))
	}
	root.Close()
	return err
}

// Health says what Start found missing.
func (s *Service) Health() service.Health { return s.health.Health() }

// Reload takes the site's profiles, and binds the listeners of a site that has its
// first. Where a running service serves from (boot.root, its listen addresses) takes
// a restart: those keys are returned.
func (s *Service) Reload(ctx context.Context, site *config.Site) (restart []string, err error) {
	old := s.cfg.Load()
	s.mu.Lock()
	running := s.http != nil
	s.mu.Unlock()
	nb := site.Boot
	nb.Root = site.BootRoot()
	if running {
		for key, changed := range map[string]bool{"boot.root": old.Root != nb.Root, "boot.http_listen": old.HTTPListen != nb.HTTPListen, "boot.tftp_listen": old.TFTPListen != nb.TFTPListen} {
			if changed {
				restart = append(restart, key)
			}
		}
		slices.Sort(restart)
		nb.Root, nb.HTTPListen, nb.TFTPListen = old.Root, old.HTTPListen, old.TFTPListen
	}
	s.setSite(nb, site.Domain)
	s.checkLoaders()
	if !running && s.Serving() {
		err = s.Start(ctx)
	}
	return restart, err
}

// Endpoint is the boot endpoint's URL as a client that reached this box at local
// sees it (the HTTP listener's port, at local when it listens on every address).
func (s *Service) Endpoint(local netip.Addr) string {
	l := s.cfg.Load().HTTPListen
	a := l.Addr()
	if a.IsUnspecified() {
		a = local
	}
	return "http://" + netip.AddrPortFrom(a, l.Port()).String()
}

// Serving says whether the site boots machines (it has profiles).
func (s *Service) Serving() bool { return len(s.cfg.Load().Profiles) > 0 }

// checkLoaders makes the service not ready while the iPXE binaries for BIOS and UEFI
// firmware are neither in the boot root nor on the box, saying which.
func (s *Service) checkLoaders() {
	var missing []string
	if s.Serving() {
		missing = s.MissingLoaders()
	}
	if len(missing) == 0 {
		s.health.Clear("ipxe")
		return
	}
	s.health.Degrade("ipxe", fmt.Sprintf("no %s in %s or %s: install Debian's ipxe package, or put them in the boot root",
		strings.Join(missing, " or "), s.cfg.Load().Root, s.ipxeDir))
}

// MissingLoaders names the iPXE binaries for BIOS and x86-64 UEFI firmware that
// neither the boot root nor the box's IPXEDir has.
func (s *Service) MissingLoaders() []string {
	return MissingLoaders(s.cfg.Load().Root, s.ipxeDir)
}

// MissingLoaders names the iPXE binaries for BIOS and x86-64 UEFI firmware that
// neither root nor ipxeDir holds ("": DefaultIPXEDir).
func MissingLoaders(root, ipxeDir string) []string {
	if ipxeDir == "" {
		ipxeDir = DefaultIPXEDir
	}
	var missing []string
	for _, name := range []string{BIOSLoader, EFILoader} {
		if !isFile(filepath.Join(root, name)) && !isFile(filepath.Join(ipxeDir, name)) {
			missing = append(missing, name)
		}
	}
	return missing
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// open opens name below the boot root, or one of the box's iPXE binaries of that
// name when the root has none. name is cleaned as a rooted path first ("/x", "x"
// and "../x" are all the root's x); os.Root refuses a symlink that leads out.
func (s *Service) open(name string) (*os.File, error) {
	s.mu.Lock()
	root := s.root
	s.mu.Unlock()
	if root == nil {
		return nil, fs.ErrNotExist
	}
	rel := strings.TrimPrefix(path.Clean("/"+strings.ReplaceAll(name, `\`, "/")), "/")
	if rel == "" {
		return nil, fs.ErrNotExist
	}
	f, err := root.Open(rel)
	if errors.Is(err, fs.ErrNotExist) && (rel == BIOSLoader || rel == EFILoader || rel == "snponly.efi" || rel == "undionly.kkpxe") {
		f, err = os.Open(filepath.Join(s.ipxeDir, rel))
	}
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fs.ErrNotExist
	}
	return f, nil
}

func (s *Service) note(e Event) {
	if s.event != nil {
		e.At = time.Now()
		s.event(e)
	}
}

// Status is what the API shows of network boot.
type Status struct {
	Profiles []ProfileStatus `json:"profiles"`
	// Missing names the iPXE binaries for BIOS and x86-64 UEFI firmware that neither
	// the boot root nor the box has (only while the site has profiles).
	Missing []string `json:"missing,omitempty"`
	HTTP    string   `json:"http,omitempty"` // where the endpoint listens
	TFTP    string   `json:"tftp,omitempty"`
}

// ProfileStatus is one profile: its name and what it boots.
type ProfileStatus struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // kernel, ipxe, url or pi
	What string `json:"what"` // the kernel, the URL, or "a script of its own"
}

// Status lists the site's profiles and what the box lacks to serve them.
func (s *Service) Status() Status {
	cfg := s.cfg.Load()
	st := Status{Profiles: []ProfileStatus{}}
	for _, p := range cfg.Profiles {
		ps := ProfileStatus{Name: p.Name, Kind: p.Kind(), What: map[string]string{
			"kernel": p.Kernel, "ipxe": "a script of its own", "url": p.URL, "pi": p.Pi}[p.Kind()]}
		st.Profiles = append(st.Profiles, ps)
	}
	if len(cfg.Profiles) > 0 {
		st.Missing = s.MissingLoaders()
		st.HTTP, st.TFTP = cfg.HTTPListen.String(), cfg.TFTPListen.String()
	}
	return st
}
