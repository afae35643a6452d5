package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/certificates/acme"
	"github.com/smallstep/certificates/db"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/service"
)

// testCA is a CA for k8s.example.com on free ports.
type testCA struct {
	*Service
	directory string // its ACME directory URL
	root      string // the path of its root certificate
	httpPort  int    // where it fetches http-01 challenges
}

// startCA runs a testCA.
func startCA(t *testing.T) testCA {
	return startCAWith(t, nil)
}

// http01Port is the http-01 port of every CA this test process starts: step-ca's
// knob for it is the process's, set once (useHTTP01Port).
var http01Port = func() func(t *testing.T) int {
	var port int
	return func(t *testing.T) int {
		if port == 0 {
			port = testenv.FreePort(t)
		}
		return port
	}
}()

func TestHTTP01PortIsSetOnce(t *testing.T) {
	port := http01Port(t)
	if err := useHTTP01Port(port); err != nil {
		t.Fatalf("the same port again: %v", err)
	}
	err := useHTTP01Port(port + 1)
	if err == nil || !strings.Contains(err.Error(), "ca.http01_port") || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("another port: got %v, want a refusal naming ca.http01_port", err)
	}
	if acme.InsecurePortHTTP01 != port {
		t.Errorf("acme.InsecurePortHTTP01 = %d, want %d", acme.InsecurePortHTTP01, port)
	}
}

// startCAWith is startCA with the clock judged by synced.
func startCAWith(t *testing.T, synced func() (bool, string)) testCA {
	return startCAOpts(t, Options{Synced: synced})
}

// startCAOpts is startCA with opts' Synced and Timeouts.
func startCAOpts(t *testing.T, opts Options) testCA {
	t.Helper()
	dir := t.TempDir()
	port := testenv.FreePort(t)
	httpPort := http01Port(t)
	m, st, site := sitetest.Open(t, fmt.Appendf(nil, `domain: k8s.example.com
data_dir: %s
ca: {listen: "127.0.0.1:%d", name: ca.k8s.example.com, cert_lifetime: 24h, http01_port: %d}
dns: {zones: [lab.test]}
`, dir, port, httpPort))
	s := New(Options{Site: site, Store: st, IPAM: m, Resolver: testenv.StubDNS(t, "k8s.example.com.", netip.MustParseAddr("127.0.0.1")),
		Synced: opts.Synced, Timeouts: opts.Timeouts})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	root := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(root, s.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return testCA{Service: s, directory: fmt.Sprintf("https://127.0.0.1:%d/acme/acme/directory", port), root: root, httpPort: httpPort}
}

// lego runs lego's http-01 for domain and returns its output and the path of the
// certificate it wrote.
func lego(t *testing.T, c testCA, domain string) (string, string, error) {
	t.Helper()
	path := t.TempDir()
	cmd := exec.Command("lego", "--server", c.directory, "--accept-tos", "--email", "ops@k8s.example.com",
		"--domains", domain, "--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", c.httpPort), "--path", path, "run")
	cmd.Env = append(os.Environ(), "LEGO_CA_CERTIFICATES="+c.root)
	out, err := cmd.CombinedOutput()
	return string(out), filepath.Join(path, "certificates", domain+".crt"), err
}

func TestLegoHTTP01(t *testing.T) {
	testenv.Need(t, "lego")
	c := startCA(t)
	root := c.root
	out, crt, err := lego(t, c, "web.k8s.example.com")
	if err != nil {
		t.Fatalf("lego: %v\n%s", err, out)
	}
	leaf, intermediates := readChain(t, crt)
	roots := x509.NewCertPool()
	rootPEM, _ := os.ReadFile(root)
	roots.AppendCertsFromPEM(rootPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "web.k8s.example.com", Roots: roots, Intermediates: intermediates}); err != nil {
		t.Errorf("the chain does not verify to the root: %v", err)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < 23*time.Hour || got > 25*time.Hour {
		t.Errorf("got a lifetime of %s, want cert_lifetime 24h", got)
	}
}

func TestNamesOutsideTheZonesAreRefused(t *testing.T) {
	testenv.Need(t, "lego")
	out, _, err := lego(t, startCA(t), "web.example.org")
	if err == nil {
		t.Fatalf("lego got a certificate for a name outside the site's zones:\n%s", out)
	}
	if !strings.Contains(out, "not allowed") && !strings.Contains(out, "rejectedIdentifier") {
		t.Errorf("the refusal does not say the name is not allowed:\n%s", out)
	}
}

// TestChallengeForANameWithoutAddress: http-01 for a name of the site's zones that its
// DNS gives no address fails at once, saying why, instead of staying pending.
func TestChallengeForANameWithoutAddress(t *testing.T) {
	testenv.Need(t, "lego")
	out, _, err := lego(t, startCA(t), "web.lab.test") // the test's DNS answers only k8s.example.com
	if err == nil {
		t.Fatalf("lego got a certificate for a name without an address:\n%s", out)
	}
	if !strings.Contains(out, "has no address in the site's DNS") || !strings.Contains(out, "dns-01") {
		t.Errorf("the refusal does not say why:\n%s", out)
	}
}

func readChain(t *testing.T, path string) (*x509.Certificate, *x509.CertPool) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for block, rest := pem.Decode(raw); block != nil; block, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("got %d certificates in %s, want the leaf and the intermediate", len(certs), path)
	}
	pool := x509.NewCertPool()
	for _, c := range certs[1:] {
		pool.AddCert(c)
	}
	return certs[0], pool
}

func TestNoCertificateWhileTheClockIsUntrusted(t *testing.T) {
	testenv.Need(t, "lego")
	out, _, err := lego(t, startCAWith(t, func() (bool, string) { return false, "no source: leap 3" }), "web.k8s.example.com")
	if err == nil {
		t.Fatalf("lego got a certificate from a CA whose clock is not synchronised:\n%s", out)
	}
	if !strings.Contains(out, "clock is not synchronised") || !strings.Contains(out, "no source: leap 3") {
		t.Errorf("the ACME error does not say why:\n%s", out)
	}
}

func TestKeyFilesAndRootsPEM(t *testing.T) {
	c := startCA(t)
	s, directory, root := c.Service, c.directory, c.root
	dir := filepath.Join(s.site.Load().DataDir, "ca")
	for _, key := range []string{"root.key", "intermediate.key"} {
		info, err := os.Stat(filepath.Join(dir, key))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: got mode %o, want 600", key, got)
		}
	}
	rootPEM, _ := os.ReadFile(root)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rootPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(strings.Replace(directory, "/acme/acme/directory", "/roots.pem", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if string(got) != string(rootPEM) {
		t.Errorf("/roots.pem is not the root")
	}
	// A restart keeps the root: clients that trust it keep trusting the CA.
	s.Stop(context.Background())
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if string(s.RootPEM()) != string(rootPEM) {
		t.Errorf("the root changed across a restart")
	}
}

// TestSeparateDatabaseIsMigrated: a data directory of an older infrad has step-ca's
// own bbolt file (ca/db). Its tables come into the store on the first start, once, and
// the old file is set aside.
func TestSeparateDatabaseIsMigrated(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "ca"), 0o700)
	old, err := db.New(&db.Config{Type: "bbolt", DataSource: filepath.Join(dir, "ca", "db")})
	if err != nil {
		t.Fatal(err)
	}
	nosqlDB := old.(*db.DB)
	if err := nosqlDB.CreateTable([]byte("acme_accounts")); err != nil {
		t.Fatal(err)
	}
	if err := nosqlDB.Set([]byte("acme_accounts"), []byte("acct-1"), []byte(`{"id":"acct-1"}`)); err != nil {
		t.Fatal(err)
	}
	revoked, _ := json.Marshal(db.RevokedCertificateInfo{Serial: "1234", RevokedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour), Reason: "test"})
	if err := nosqlDB.Set([]byte("revoked_x509_certs"), []byte("1234"), revoked); err != nil {
		t.Fatal(err)
	}
	old.Shutdown()

	port := testenv.FreePort(t)
	m, st, site := sitetest.Open(t, fmt.Appendf(nil, "domain: k8s.example.com\ndata_dir: %s\nca: {listen: \"127.0.0.1:%d\", http01_port: %d}\n", dir, port, http01Port(t)))
	s := New(Options{Site: site, Store: st, IPAM: m, Resolver: testenv.StubDNS(t, "k8s.example.com.", netip.MustParseAddr("127.0.0.1"))})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	for table, key := range map[string]string{"acme_accounts": "acct-1", "revoked_x509_certs": "1234"} {
		if v, err := s.db.Get([]byte(table), []byte(key)); err != nil || len(v) == 0 {
			t.Errorf("%s/%s after migration: got %q %v", table, key, v, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", "db")); !os.IsNotExist(err) {
		t.Errorf("the old database is still where it was: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", "db.migrated")); err != nil {
		t.Errorf("the old database was not set aside: %v", err)
	}
}

func TestDirectoryURL(t *testing.T) {
	for port, want := range map[uint16]string{
		443:  "https://ca.k8s.example.com/acme/acme/directory",
		8443: "https://ca.k8s.example.com:8443/acme/acme/directory",
	} {
		if got := DirectoryURL("ca.k8s.example.com.", port); got != want {
			t.Errorf("port %d: got %s, want %s", port, got, want)
		}
	}
}

// TestTimeouts: an ACME client that trickles its request's body is cut off with 408,
// and one that keeps its connection idle is closed (short bounds here).
func TestTimeouts(t *testing.T) {
	ca := startCAOpts(t, Options{Timeouts: service.HTTPTimeouts{Read: 300 * time.Millisecond, Idle: 300 * time.Millisecond}})
	u, _ := url.Parse(ca.directory)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.RootPEM())
	dial := func() net.Conn {
		conn, err := tls.Dial("tcp", u.Host, &tls.Config{ServerName: "ca.k8s.example.com", RootCAs: roots})
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	if answer := testenv.Trickle(t, dial(), "ca.k8s.example.com", "/acme/acme/new-account", "", 10*time.Second); testenv.Status(answer) != http.StatusRequestTimeout {
		t.Errorf("a trickled body: %q, want 408", answer)
	}
	if !testenv.IdleClosed(t, dial(), "ca.k8s.example.com", "/roots.pem", 10*time.Second) {
		t.Errorf("an idle connection stayed open")
	}
}
