package boot

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/pkg/site"
)

const testSite = `domain: lab.test
boot:
  root: %s
  profiles:
    - {name: debian, kernel: debian/vmlinuz, cmdline: "hostname={{.Name}}"}
    - {name: pi4, pi: pi4, cmdline: "console=serial0 root=/dev/nfs ip={{.IP}} hostname={{.Name}}"}
subnets:
  - {name: lab, cidr: 10.77.0.0/24, boot: debian, ranges: [{kind: dhcp, start: 10.77.0.100, end: 10.77.0.109}]}
hosts:
  - {name: once, ip: 10.77.0.21, mac: "52:54:00:77:00:21", boot_once: true}
  - {name: always, ip: 10.77.0.22, mac: "52:54:00:77:00:22"}
  - {name: never, ip: 10.77.0.23, mac: "52:54:00:77:00:23", boot: none}
  - {name: pi01, ip: 10.77.0.31, mac: "dc:a6:32:00:00:31", boot: pi4, pi_serial: A1B2C3D4}
`

// newTestService is a boot service on a fresh store whose root holds
// debian/vmlinuz, with its handler; no socket is bound.
func newTestService(t *testing.T) (*Service, http.Handler) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "debian"), 0o755)
	os.WriteFile(filepath.Join(root, "debian", "vmlinuz"), []byte("0123456789"), 0o644)
	os.MkdirAll(filepath.Join(root, "pi4"), 0o755)
	os.WriteFile(filepath.Join(root, "pi4", "start4.elf"), []byte("firmware"), 0o644)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("outside"), 0o644)
	os.Symlink(filepath.Join(dir, "secret"), filepath.Join(root, "link"))
	m, cfg := sitetest.IPAM(t, fmt.Appendf(nil, testSite, root))
	s := New(Options{Site: cfg, IPAM: m, Registry: prometheus.NewRegistry(), IPXEDir: t.TempDir()})
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	s.root = r
	return s, s.handler()
}

func do(h http.Handler, method, path, from string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = from + ":40000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestScriptsFollowTheHostObject(t *testing.T) {
	_, h := newTestService(t)
	tests := []struct {
		mac    string
		status int
		has    string
	}{
		{"52-54-00-77-00-22", 200, "hostname=always"},           // the subnet's profile
		{"52%3A54%3A00%3A77%3A00%3A22", 200, "hostname=always"}, // as iPXE escapes it
		{"52-54-00-77-00-21", 200, "/booted/52-54-00-77-00-21"}, // boot_once: the script calls back
		{"52-54-00-77-00-23", 404, "boots from no profile"},     // boot: none
		{"52-54-00-77-00-99", 200, "hostname="},                 // no host, no lease: the subnet it asks from (a proxyDHCP site)
		{"not-a-mac", 400, "not a MAC"},
	}
	for _, tc := range tests {
		w := do(h, "GET", "/ipxe/"+tc.mac, "10.77.0.5")
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.has) {
			t.Errorf("%s: got %d %q, want %d with %q", tc.mac, w.Code, w.Body, tc.status, tc.has)
		}
	}
	if w := do(h, "GET", "/ipxe/52-54-00-77-00-99", "192.0.2.5"); w.Code != 404 {
		t.Errorf("an unknown machine from no subnet of the site: got %d %q, want 404", w.Code, w.Body)
	}
}

func TestFilesStayBelowTheRoot(t *testing.T) {
	_, h := newTestService(t)
	for _, p := range []string{"/files/../secret", "/files/..%2fsecret", "/files/link", "/files/debian", "/files/"} {
		if w := do(h, "GET", p, "10.77.0.5"); w.Code != 404 {
			t.Errorf("%s: got %d %q, want 404", p, w.Code, w.Body)
		}
	}
	req := httptest.NewRequest("GET", "/files/debian/vmlinuz", nil)
	req.Header.Set("Range", "bytes=2-4")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if body, _ := io.ReadAll(w.Body); w.Code != 206 || string(body) != "234" {
		t.Errorf("a range: got %d %q, want 206 \"234\"", w.Code, body)
	}
}

func TestOnlyTheMachineSaysItBooted(t *testing.T) {
	s, h := newTestService(t)
	if w := do(h, "GET", "/booted/52-54-00-77-00-21", "10.77.0.22"); w.Code != 403 {
		t.Errorf("another machine's callback: got %d %q, want 403", w.Code, w.Body)
	}
	if w := do(h, "GET", "/booted/52-54-00-77-00-22", "10.77.0.22"); w.Code != 409 {
		t.Errorf("the callback of a host that does not boot once: got %d %q, want 409", w.Code, w.Body)
	}
	// A machine that has its address from another server (proxyDHCP) calls back
	// from where it fetched its script.
	if w := do(h, "GET", "/ipxe/52-54-00-77-00-21", "10.77.0.160"); w.Code != 200 {
		t.Fatalf("the script: got %d %q", w.Code, w.Body)
	}
	w := do(h, "GET", "/booted/52-54-00-77-00-21", "10.77.0.160")
	var got struct{ Host, Booted string }
	if json.Unmarshal(w.Body.Bytes(), &got); w.Code != 200 || got.Host != "once" || got.Booted == "" {
		t.Fatalf("the machine's own callback: got %d %q", w.Code, w.Body)
	}
	if w := do(h, "GET", "/ipxe/52-54-00-77-00-21", "10.77.0.21"); w.Code != 404 {
		t.Errorf("after its callback, the host's script: got %d %q, want 404 (it boots from disk)", w.Code, w.Body)
	}
	if w := do(h, "GET", "/booted/52-54-00-77-00-21", "10.77.0.21"); w.Code != 200 {
		t.Errorf("a second callback: got %d %q, want 200 (nothing to change)", w.Code, w.Body)
	}
	if h, _ := s.ipam.Model().Host("once"); h.Booted.IsZero() {
		t.Error("the model does not have the host booted")
	}
}

func TestMissingLoaders(t *testing.T) {
	root, box := t.TempDir(), t.TempDir()
	if got := MissingLoaders(root, box); strings.Join(got, " ") != "undionly.kpxe ipxe.efi" {
		t.Errorf("an empty root and box: got %v", got)
	}
	os.WriteFile(filepath.Join(box, BIOSLoader), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(root, EFILoader), []byte("x"), 0o644)
	if got := MissingLoaders(root, box); len(got) != 0 {
		t.Errorf("one in the box, one in the root: got %v missing", got)
	}
}

func TestPiFilesFollowTheHost(t *testing.T) {
	s, _ := newTestService(t)
	local := netip.MustParseAddr("10.77.0.1")
	read := func(name string) (string, bool, error) {
		rc, size, ok, err := s.piFile(name, netip.MustParseAddr("10.77.0.31"), local)
		if rc == nil {
			return "", ok, err
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		if int64(len(b)) != size {
			t.Errorf("%s: %d bytes, told %d", name, len(b), size)
		}
		return string(b), ok, err
	}
	tests := []struct {
		name, want string
		ok         bool
	}{
		{"a1b2c3d4/start4.elf", "firmware", true},
		{"A1B2C3D4/start4.elf", "firmware", true},
		{"/a1b2c3d4/cmdline.txt", "console=serial0 root=/dev/nfs ip=10.77.0.31 hostname=pi01\n", true},
		{"a1b2c3d4/../../debian/vmlinuz", "", false}, // cleaned: debian/vmlinuz is no Pi's
		{"deadbeef/start4.elf", "", false},           // no host has that serial: a plain file
		{"start4.elf", "", false},
	}
	for _, tc := range tests {
		got, ok, err := read(tc.name)
		if got != tc.want || ok != tc.ok || err != nil {
			t.Errorf("%s: got %q, %v, %v; want %q, %v", tc.name, got, ok, err, tc.want, tc.ok)
		}
	}
	if _, ok, err := read("a1b2c3d4/missing.dtb"); !ok || err == nil {
		t.Errorf("a file the Pi's folder lacks: got %v, %v; want its error", ok, err)
	}
}

// TestReloadStartsWhatTheSiteNowBoots: a site without profiles binds nothing; a
// reload that brings the first binds TFTP and HTTP; one that moves them says a
// restart is needed, and keeps serving where it is.
func TestReloadStartsWhatTheSiteNowBoots(t *testing.T) {
	m, idle := sitetest.IPAM(t, []byte("domain: lab.test\n"))
	s := New(Options{Site: idle, IPAM: m, Registry: prometheus.NewRegistry(), IPXEDir: t.TempDir()})
	if err := s.Start(t.Context()); err != nil || s.http != nil {
		t.Fatalf("no profiles: Start gave %v, bound %v", err, s.http != nil)
	}
	root := t.TempDir()
	cfg := *idle
	cfg.Boot.Root = root
	cfg.Boot.HTTPListen = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.Boot.TFTPListen = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.Boot.Profiles = []site.BootProfile{{Name: "debian", Kernel: "debian/vmlinuz"}}
	restart, err := s.Reload(t.Context(), &cfg)
	if err != nil || len(restart) != 0 || s.http == nil {
		t.Fatalf("the first profile: restart %v, err %v, bound %v", restart, err, s.http != nil)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	moved := cfg
	moved.Boot.Root = t.TempDir()
	if restart, err := s.Reload(t.Context(), &moved); err != nil || strings.Join(restart, " ") != "boot.root" || s.cfg.Load().Root != root {
		t.Errorf("a new root: restart %v, err %v, serving %s; want boot.root named and %s kept", restart, err, s.cfg.Load().Root, root)
	}
}
