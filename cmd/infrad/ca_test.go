package main

// The CA end to end: infrad serving DNS, NTP and ACME on loopback, and the clients
// sites use (lego with http-01 and with dns-01 through RFC 2136 into infrad's DNS,
// certbot standalone) getting certificates that openssl verifies against the root
// the API serves.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/infrad/infrad/internal/testenv"
)

const caSite = `domain: k8s.example.com
data_dir: %[1]s
api: {listen: "127.0.0.1:%[2]d"}
dns:
  listen: ["127.0.0.1:%[3]d"]
  tsig_keys:
    - {name: lego, algorithm: hmac-sha256, secret: "bGVnby1zZWNyZXQtbGVnby1zZWNyZXQtbGVnby1zZWNyZXQ="}
  records:
    - {name: "*", type: A, value: 127.0.0.1}
ntp: {listen: ["127.0.0.1:%[4]d"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:%[5]d", name: ca.k8s.example.com, cert_lifetime: 48h, http01_port: %[6]d}
`

type caLab struct {
	dir, root, directory string
	dnsPort, httpPort    int
}

func TestCAWithRealClients(t *testing.T) {
	testenv.Need(t, "lego", "certbot", "openssl", "curl")
	dir := t.TempDir()
	api, dnsPort, ntpPort, caPort, httpPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	site := filepath.Join(dir, "site.yaml")
	os.WriteFile(site, fmt.Appendf(nil, caSite, filepath.Join(dir, "data"), api, dnsPort, ntpPort, caPort, httpPort), 0o644)
	p := start(t, dir, "serve", "-c", site)
	waitReady(t, fmt.Sprintf("http://127.0.0.1:%d", api))

	// The root, from the API, with no token.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/ca/root.pem", api))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET root.pem: %v %v", resp, err)
	}
	rootPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lab := caLab{dir: dir, root: filepath.Join(dir, "root.pem"), dnsPort: dnsPort, httpPort: httpPort,
		directory: fmt.Sprintf("https://127.0.0.1:%d/acme/acme/directory", caPort)}
	os.WriteFile(lab.root, rootPEM, 0o644)

	t.Run("the CA's own certificate is for ca.name", func(t *testing.T) {
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(rootPEM)
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", caPort), &tls.Config{ServerName: "ca.k8s.example.com", RootCAs: roots})
		if err != nil {
			t.Fatalf("TLS to the CA as ca.k8s.example.com: %v", err)
		}
		conn.Close()
	})
	httpFlags := []string{"--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", httpPort)}
	var webPath string
	t.Run("lego http-01", func(t *testing.T) {
		crt, path := lab.lego(t, "web.k8s.example.com", nil, httpFlags...)
		lab.verify(t, crt, "web.k8s.example.com")
		webPath = path
		copyFile(t, crt, filepath.Join(dir, "web.crt")) // kept for the revocation check after lego revokes it
	})
	t.Run("lego dns-01 through RFC 2136", func(t *testing.T) {
		env := []string{
			fmt.Sprintf("RFC2136_NAMESERVER=127.0.0.1:%d", dnsPort),
			"RFC2136_TSIG_KEY=lego.", "RFC2136_TSIG_ALGORITHM=hmac-sha256.",
			"RFC2136_TSIG_SECRET=bGVnby1zZWNyZXQtbGVnby1zZWNyZXQtbGVnby1zZWNyZXQ=",
			"RFC2136_PROPAGATION_TIMEOUT=20", "RFC2136_POLLING_INTERVAL=1",
		}
		crt, _ := lab.lego(t, "dns01.k8s.example.com", env, "--dns", "rfc2136",
			"--dns.resolvers", fmt.Sprintf("127.0.0.1:%d", dnsPort), "--dns.disable-cp")
		lab.verify(t, crt, "dns01.k8s.example.com")

		// A wildcard, as an ingress's certificate is: dns-01 alone may prove one.
		path := filepath.Join(dir, "lego-wildcard")
		cmd := exec.Command("lego", "--server", lab.directory, "--accept-tos", "--email", "ops@k8s.example.com",
			"--domains", "*.apps.k8s.example.com", "--path", path, "--dns", "rfc2136",
			"--dns.resolvers", fmt.Sprintf("127.0.0.1:%d", dnsPort), "--dns.disable-cp", "run")
		cmd.Env = append(append(os.Environ(), "LEGO_CA_CERTIFICATES="+lab.root), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("lego for *.apps.k8s.example.com: %v\n%s", err, out)
		}
		wild := filepath.Join(path, "certificates", "_.apps.k8s.example.com.crt")
		lab.verify(t, wild, "*.apps.k8s.example.com")
		// The certificate names where its CRL and issuer are: the CA's own address.
		ext, _ := exec.Command("openssl", "x509", "-in", wild, "-noout", "-ext", "crlDistributionPoints,authorityInfoAccess").CombinedOutput()
		base := fmt.Sprintf("https://ca.k8s.example.com:%d", caPort)
		if !strings.Contains(string(ext), base+"/crl") || !strings.Contains(string(ext), base+"/intermediate.crt") {
			t.Errorf("the certificate's CRL distribution point and issuer URL are not %s's:\n%s", base, ext)
		}
		// The CRL the certificate names is in its scope (its issuing distribution point
		// is that URL): openssl checks the certificate against it.
		crl := filepath.Join(dir, "crl.der")
		fetch := exec.Command("curl", "-sSf", "--resolve", fmt.Sprintf("ca.k8s.example.com:%d:127.0.0.1", caPort), "--cacert", lab.root, "-o", crl, base+"/crl")
		if out, err := fetch.CombinedOutput(); err != nil {
			t.Fatalf("curl %s/crl: %v\n%s", base, err, out)
		}
		crlPEM := filepath.Join(dir, "crl.pem")
		if out, err := exec.Command("openssl", "crl", "-inform", "DER", "-in", crl, "-out", crlPEM).CombinedOutput(); err != nil {
			t.Fatalf("openssl crl: %v\n%s", err, out)
		}
		if idp, _ := exec.Command("openssl", "crl", "-in", crlPEM, "-noout", "-text").CombinedOutput(); !strings.Contains(string(idp), base+"/crl") {
			t.Errorf("the CRL's issuing distribution point is not %s/crl:\n%s", base, idp)
		}
		out, err := exec.Command("openssl", "verify", "-crl_check", "-CAfile", lab.root, "-untrusted", wild, "-CRLfile", crlPEM, wild).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ": OK") {
			t.Errorf("openssl verify -crl_check of a good certificate with the CRL it names: %v\n%s", err, out)
		}
	})
	t.Run("certbot standalone", func(t *testing.T) {
		work := t.TempDir()
		cmd := exec.Command("certbot", "certonly", "--standalone", "--non-interactive", "--agree-tos",
			"--register-unsafely-without-email", "--server", lab.directory, "-d", "certbot.k8s.example.com",
			"--http-01-port", fmt.Sprint(httpPort), "--http-01-address", "127.0.0.1",
			"--config-dir", work, "--work-dir", work, "--logs-dir", work)
		cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+lab.root)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("certbot: %v\n%s", err, out)
		}
		lab.verify(t, filepath.Join(work, "live", "certbot.k8s.example.com", "fullchain.pem"), "certbot.k8s.example.com")
	})
	t.Run("revocation through ACME, the certificate list and the CRL", func(t *testing.T) {
		if webPath == "" {
			t.Skip("lego http-01 failed")
		}
		cmd := exec.Command("lego", "--server", lab.directory, "--accept-tos", "--email", "ops@k8s.example.com",
			"--domains", "web.k8s.example.com", "--path", webPath, "revoke")
		cmd.Env = append(os.Environ(), "LEGO_CA_CERTIFICATES="+lab.root)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("lego revoke: %v\n%s", err, out)
		}
		base := fmt.Sprintf("http://127.0.0.1:%d", api)
		token := readToken(t, filepath.Join(dir, "data"))
		var certs []struct {
			Serial  string
			Names   []string
			Revoked bool
		}
		getJSON(t, base+"/api/v1/ca/certificates", token, &certs)
		revoked := ""
		for _, c := range certs {
			if c.Revoked {
				revoked = c.Serial
				if len(c.Names) != 1 || c.Names[0] != "web.k8s.example.com" {
					t.Errorf("the revoked certificate is %v, want web.k8s.example.com's", c.Names)
				}
			}
		}
		if len(certs) != 4 || revoked == "" {
			t.Fatalf("got %+v, want 4 certificates, web's revoked", certs)
		}
		// The change log has each issue and the revocation, by ACME, and lego's TXT
		// records through RFC 2136 under its key.
		var log struct {
			Changes []struct {
				Source  string
				Changes []struct{ Kind, Key, Op string }
			}
		}
		getJSON(t, base+"/api/v1/changes?object=certificate&limit=1000", token, &log)
		ops := map[string]int{}
		for _, e := range log.Changes {
			for _, c := range e.Changes {
				if c.Kind == "certificate" {
					ops[e.Source+" "+c.Op]++
					if c.Op == "revoke" && c.Key != revoked {
						t.Errorf("the change log revoked %s, want %s", c.Key, revoked)
					}
				}
			}
		}
		if ops["acme create"] != 4 || ops["acme revoke"] != 1 {
			t.Errorf("the change log's certificates: %v, want 4 issued and 1 revoked by acme", ops)
		}
		getJSON(t, base+"/api/v1/changes?source=rfc2136%20key%20lego.&limit=1", token, &log)
		if len(log.Changes) != 1 {
			t.Errorf("the change log has no change by lego's TSIG key")
		}
		crl := filepath.Join(dir, "crl.der")
		resp, err := http.Get(base + "/api/v1/ca/crl")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET crl: %v %v", resp, err)
		}
		der, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		os.WriteFile(crl, der, 0o644)
		text, err := exec.Command("openssl", "crl", "-inform", "DER", "-in", crl, "-noout", "-text").CombinedOutput()
		if err != nil || !strings.Contains(strings.ToUpper(string(text)), "SERIAL NUMBER: "+revoked) {
			t.Errorf("the CRL does not list serial %s, as the API shows it: %v\n%s", revoked, err, text)
		}
		var info struct {
			RootFingerprint string `json:"root_fingerprint_sha256"`
			Directory       string
		}
		getJSON(t, base+"/api/v1/ca", token, &info)
		host := fmt.Sprintf("ca.k8s.example.com:%d", caPort) // the CA's port is in the URL: it is not 443
		if len(info.RootFingerprint) != 64 || info.Directory != "https://"+host+"/acme/acme/directory" {
			t.Errorf("got %+v", info)
		}
		// The directory answers at the URL given, and its links point where it is.
		out, err := exec.Command("curl", "-sS", "--resolve", host+":127.0.0.1", "--cacert", lab.root, info.Directory).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"newAccount":"https://`+host+`/acme/acme/new-account"`) {
			t.Errorf("curl %s: %v\n%s", info.Directory, err, out)
		}
		metrics, _ := http.Get(base + "/metrics")
		body, _ := io.ReadAll(metrics.Body)
		metrics.Body.Close()
		if !strings.Contains(string(body), "infrad_ca_certificates_issued 4") || !strings.Contains(string(body), "infrad_ca_intermediate_expiry_days") {
			t.Errorf("the CA metrics are missing from /metrics")
		}
	})
	t.Run("a relying party tells a revoked certificate from a good one by what they name", func(t *testing.T) {
		// The wildcard's certificate is good, web's revoked (above). Everything the check
		// needs is fetched from the URLs in the certificates: the issuer and the CRL the
		// leaf names, the root's CRL the intermediate names.
		fetch := func(url string) []byte {
			t.Helper()
			out, err := exec.Command("curl", "-sSf", "--resolve", fmt.Sprintf("ca.k8s.example.com:%d:127.0.0.1", caPort), "--cacert", lab.root, url).Output()
			if err != nil {
				t.Fatalf("curl %s: %v", url, err)
			}
			return out
		}
		for _, c := range []struct {
			name, path string
			revoked    bool
		}{
			{"*.apps.k8s.example.com", filepath.Join(dir, "lego-wildcard", "certificates", "_.apps.k8s.example.com.crt"), false},
			{"web.k8s.example.com", filepath.Join(dir, "web.crt"), true},
		} {
			raw, _ := os.ReadFile(c.path)
			block, _ := pem.Decode(raw)
			leaf, err := x509.ParseCertificate(block.Bytes)
			if err != nil || len(leaf.CRLDistributionPoints) != 1 || len(leaf.IssuingCertificateURL) != 1 {
				t.Fatalf("%s: %v, CRL %v, issuer %v", c.name, err, leaf.CRLDistributionPoints, leaf.IssuingCertificateURL)
			}
			inter, err := x509.ParseCertificate(fetch(leaf.IssuingCertificateURL[0]))
			if err != nil || len(inter.CRLDistributionPoints) != 1 || len(inter.IssuingCertificateURL) != 1 {
				t.Fatalf("%s's issuer: %v, CRL %v, issuer %v", c.name, err, inter.CRLDistributionPoints, inter.IssuingCertificateURL)
			}
			root, err := x509.ParseCertificate(fetch(inter.IssuingCertificateURL[0]))
			if err != nil {
				t.Fatal(err)
			}
			leafCRL, err := x509.ParseRevocationList(fetch(leaf.CRLDistributionPoints[0]))
			if err != nil {
				t.Fatal(err)
			}
			rootCRL, err := x509.ParseRevocationList(fetch(inter.CRLDistributionPoints[0]))
			if err != nil {
				t.Fatal(err)
			}
			// Go: the chain verifies, each CRL is its issuer's, and only web is listed.
			pool, inters := x509.NewCertPool(), x509.NewCertPool()
			pool.AddCert(root)
			inters.AddCert(inter)
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters, DNSName: c.name}); err != nil {
				t.Errorf("%s: the chain from the URLs does not verify: %v", c.name, err)
			}
			if leafCRL.CheckSignatureFrom(inter) != nil || rootCRL.CheckSignatureFrom(root) != nil {
				t.Errorf("%s: a CRL is not signed by the issuer it belongs to", c.name)
			}
			listed := slices.ContainsFunc(leafCRL.RevokedCertificateEntries, func(e x509.RevocationListEntry) bool { return e.SerialNumber.Cmp(leaf.SerialNumber) == 0 })
			if listed != c.revoked {
				t.Errorf("%s: in the CRL %v, want %v", c.name, listed, c.revoked)
			}
			// openssl, checking every certificate of the chain against its CRL.
			write := func(name, typ string, der []byte) string {
				p := filepath.Join(dir, name)
				os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644)
				return p
			}
			out, err := exec.Command("openssl", "verify", "-crl_check_all", "-CAfile", write("rp-root.pem", "CERTIFICATE", root.Raw),
				"-untrusted", write("rp-inter.pem", "CERTIFICATE", inter.Raw), "-CRLfile", write("rp-crl.pem", "X509 CRL", leafCRL.Raw),
				"-CRLfile", write("rp-root-crl.pem", "X509 CRL", rootCRL.Raw), write("rp-leaf.pem", "CERTIFICATE", leaf.Raw)).CombinedOutput()
			switch {
			case !c.revoked && (err != nil || !strings.Contains(string(out), ": OK")):
				t.Errorf("openssl verify -crl_check_all of %s, a good certificate: %v\n%s", c.name, err, out)
			case c.revoked && (err == nil || !strings.Contains(string(out), "certificate revoked")):
				t.Errorf("openssl verify -crl_check_all of %s, revoked: %v\n%s; want \"certificate revoked\"", c.name, err, out)
			}
		}
	})
	t.Run("backup and restore carry the CA's database", func(t *testing.T) {
		if webPath == "" {
			t.Skip("lego http-01 failed")
		}
		base := fmt.Sprintf("http://127.0.0.1:%d", api)
		copyPath := runBackup(t, dir, base)
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.wait(t, 10*time.Second)

		// A fresh data directory: the store from the backup, the CA's keys from files.
		restored := filepath.Join(t.TempDir(), "data")
		os.MkdirAll(filepath.Join(restored, "ca"), 0o700)
		copyFile(t, copyPath, filepath.Join(restored, "infrad.db"))
		keys, _ := filepath.Glob(filepath.Join(dir, "data", "ca", "*"))
		for _, k := range keys {
			copyFile(t, k, filepath.Join(restored, "ca", filepath.Base(k)))
		}
		site2 := filepath.Join(t.TempDir(), "site.yaml")
		os.WriteFile(site2, fmt.Appendf(nil, caSite, restored, api, dnsPort, ntpPort, caPort, httpPort), 0o644)
		start(t, dir, "serve", "-c", site2)
		waitReady(t, base)
		token := readToken(t, restored)

		var certs []struct {
			Serial  string
			Names   []string
			Revoked bool
		}
		getJSON(t, base+"/api/v1/ca/certificates", token, &certs)
		listed := map[string]bool{}
		for _, c := range certs {
			listed[strings.Join(c.Names, ",")] = true
			if c.Names[0] == "web.k8s.example.com" && !c.Revoked {
				t.Errorf("the certificate revoked before the backup is not revoked after the restore: %+v", c)
			}
		}
		if len(certs) != 4 || !listed["web.k8s.example.com"] || !listed["certbot.k8s.example.com"] {
			t.Errorf("after restore: got %+v, want the 4 certificates issued before", certs)
		}
		// lego's account, registered before the backup, still works: lego reuses it
		// from web's directory, and the CA must know it.
		args := append([]string{"--server", lab.directory, "--accept-tos", "--email", "ops@k8s.example.com",
			"--domains", "after.k8s.example.com", "--path", webPath}, httpFlags...)
		cmd := exec.Command("lego", append(args, "run")...)
		cmd.Env = append(os.Environ(), "LEGO_CA_CERTIFICATES="+lab.root)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("lego with the account from before the backup: %v\n%s", err, out)
		}
		lab.verify(t, filepath.Join(webPath, "certificates", "after.k8s.example.com.crt"), "after.k8s.example.com")
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	raw, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func getJSON(t *testing.T, url, token string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// lego runs lego for domain with the challenge flags given and returns the path of
// the certificate (with its chain) it wrote, and lego's own directory.
func (l caLab) lego(t *testing.T, domain string, env []string, flags ...string) (crt, path string) {
	t.Helper()
	path = filepath.Join(l.dir, "lego-"+domain) // outlives the subtest: revocation needs it
	args := append([]string{"--server", l.directory, "--accept-tos", "--email", "ops@k8s.example.com",
		"--domains", domain, "--path", path}, flags...)
	cmd := exec.Command("lego", append(args, "run")...)
	cmd.Env = append(append(os.Environ(), "LEGO_CA_CERTIFICATES="+l.root), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lego: %v\n%s", err, out)
	}
	return filepath.Join(path, "certificates", domain+".crt"), path
}

// verify checks the chain in path with openssl against the served root, and the
// leaf's name and lifetime.
func (l caLab) verify(t *testing.T, path, name string) {
	t.Helper()
	out, err := exec.Command("openssl", "verify", "-CAfile", l.root, "-untrusted", path, path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": OK") {
		t.Errorf("openssl verify: %v\n%s", err, out)
	}
	text, _ := exec.Command("openssl", "x509", "-in", path, "-noout", "-ext", "subjectAltName", "-dates").Output()
	if !strings.Contains(string(text), "DNS:"+name) {
		t.Errorf("the certificate is not for %s:\n%s", name, text)
	}
	end, _ := exec.Command("openssl", "x509", "-in", path, "-noout", "-checkend", fmt.Sprint(47*3600)).CombinedOutput()
	tooLong, _ := exec.Command("openssl", "x509", "-in", path, "-noout", "-checkend", fmt.Sprint(49*3600)).CombinedOutput()
	if !strings.Contains(string(end), "will not expire") || !strings.Contains(string(tooLong), "will expire") {
		t.Errorf("the certificate does not live cert_lifetime (48h):\n%s", text)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	api, dnsPort, ntpPort, caPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	site := filepath.Join(dir, "site.yaml")
	os.WriteFile(site, fmt.Appendf(nil, `domain: k8s.example.com
data_dir: %s
api: {listen: "127.0.0.1:%d"}
dns: {listen: ["127.0.0.1:%d"], forwarders: [%q]}
ntp: {listen: ["127.0.0.1:%d"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:%d"}
subnets: [{name: vm, cidr: 10.0.40.0/24}]
hosts: [{name: node1, ip: 10.0.40.10}]
`, filepath.Join(dir, "data"), api, dnsPort, testenv.StubDNS(t, ".", netip.MustParseAddr("192.0.2.1")).String(), ntpPort, caPort), 0o644)
	start(t, dir, "serve", "-c", site)
	waitReady(t, fmt.Sprintf("http://127.0.0.1:%d", api))
	args := []string{"check", "--server", "127.0.0.1", "--dns-port", fmt.Sprint(dnsPort), "--ntp-port", fmt.Sprint(ntpPort),
		"--api", fmt.Sprintf("http://127.0.0.1:%d", api), "--ca-port", fmt.Sprint(caPort), "--outside", "outside.test"}

	p := start(t, dir, append(args, "--name", "node1")...)
	if code := p.wait(t, 30*time.Second); code != exitOK || strings.Count(p.output.String(), "ok    ") != 6 {
		t.Errorf("check: exit %d, want 6 checks ok:\n%s", code, p.output.String())
	}
	for _, want := range []string{"node1.k8s.example.com. is 10.0.40.10", "10.0.40.10 is node1.k8s.example.com.", "sha256 ", "outside.test is 192.0.2.1"} {
		if !strings.Contains(p.output.String(), want) {
			t.Errorf("check does not say %q:\n%s", want, p.output.String())
		}
	}
	// From a node the API (on loopback) is out of reach: the root comes from the CA.
	p = start(t, dir, append(args, "--name", "node1", "--api", "http://127.0.0.1:1")...)
	if code := p.wait(t, 30*time.Second); code != exitOK || !strings.Contains(p.output.String(), fmt.Sprintf("from https://127.0.0.1:%d/roots.pem", caPort)) {
		t.Errorf("check with the API out of reach: exit %d, want the root from the CA:\n%s", code, p.output.String())
	}
	bad := start(t, dir, append(args, "--name", "nosuch")...)
	if code := bad.wait(t, 30*time.Second); code != exitFail || !strings.Contains(bad.output.String(), "FAIL  forward name") {
		t.Errorf("check of an unknown node: exit %d\n%s", code, bad.output.String())
	}
}

// TestACMEExternalAccountBinding: with ca.acme_eab, lego without a key is refused an
// account; infrad export cert-manager makes a key and writes it into the issuer's
// Secret; lego with that key (--eab --kid --hmac) gets a certificate; the key binds
// one account only.
func TestACMEExternalAccountBinding(t *testing.T) {
	testenv.Need(t, "lego", "openssl")
	dir := t.TempDir()
	api, dnsPort, ntpPort, caPort, httpPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	site := filepath.Join(dir, "site.yaml")
	text := fmt.Sprintf(caSite, filepath.Join(dir, "data"), api, dnsPort, ntpPort, caPort, httpPort)
	os.WriteFile(site, []byte(strings.Replace(text, "http01_port:", "acme_eab: true, http01_port:", 1)), 0o644)
	start(t, dir, "serve", "-c", site)
	base := fmt.Sprintf("http://127.0.0.1:%d", api)
	waitReady(t, base)
	lab := caLab{dir: dir, root: filepath.Join(dir, "root.pem"), dnsPort: dnsPort, httpPort: httpPort,
		directory: fmt.Sprintf("https://127.0.0.1:%d/acme/acme/directory", caPort)}
	resp, err := http.Get(base + "/api/v1/ca/root.pem")
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	os.WriteFile(lab.root, rootPEM, 0o644)
	httpFlags := []string{"--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", httpPort)}

	legoRun := func(domain string, flags ...string) ([]byte, error) {
		args := append([]string{"--server", lab.directory, "--accept-tos", "--email", "ops@k8s.example.com",
			"--domains", domain, "--path", filepath.Join(dir, "lego-"+domain)}, flags...)
		cmd := exec.Command("lego", append(append(args, httpFlags...), "run")...)
		cmd.Env = append(os.Environ(), "LEGO_CA_CERTIFICATES="+lab.root)
		return cmd.CombinedOutput()
	}
	// lego reads the directory's externalAccountRequired and stops; a client that does
	// not (golang.org/x/crypto/acme) is refused by the server.
	if out, err := legoRun("noeab.k8s.example.com"); err == nil || !strings.Contains(string(out), "External Account Binding") {
		t.Errorf("lego without an EAB key: %v, want refused for want of External Account Binding:\n%s", err, out)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	acmeClient := &acme.Client{Key: key, DirectoryURL: lab.directory,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}}
	var ae *acme.Error
	if _, err := acmeClient.Register(t.Context(), &acme.Account{}, acme.AcceptTOS); !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:externalAccountRequired" {
		t.Errorf("an account without an EAB key: got %v, want refused with externalAccountRequired", err)
	}

	out, err := exec.Command(binary, "export", "--api", base, "--data", filepath.Join(dir, "data"), "cert-manager").CombinedOutput()
	if err != nil {
		t.Fatalf("infrad export cert-manager: %v\n%s", err, out)
	}
	kid := regexp.MustCompile(`(?m)^      keyID: (\S+)$`).FindSubmatch(out)
	hmac := regexp.MustCompile(`(?m)^  secret: (\S+)$`).FindSubmatch(out)
	if kid == nil || hmac == nil || !strings.Contains(string(out), "name: infrad-acme-eab") {
		t.Fatalf("export cert-manager with ca.acme_eab: no externalAccountBinding and Secret:\n%s", out)
	}
	eab := []string{"--eab", "--kid", string(kid[1]), "--hmac", string(hmac[1])}
	if out, err := legoRun("eab.k8s.example.com", eab...); err != nil {
		t.Fatalf("lego with the export's EAB key: %v\n%s", err, out)
	}
	lab.verify(t, filepath.Join(dir, "lego-eab.k8s.example.com", "certificates", "eab.k8s.example.com.crt"), "eab.k8s.example.com")
	// The key bound that account: another account (a new lego directory) cannot use it
	// (step-ca answers serverInternal: it finds the key's secret, cleared when bound,
	// missing before it checks the binding).
	if out, err := legoRun("again.k8s.example.com", eab...); err == nil || !strings.Contains(string(out), "new-account") {
		t.Errorf("a second account with a bound EAB key: %v, want refused:\n%s", err, out)
	}
	var keys []struct {
		ID      string `json:"key_id"`
		Account string `json:"account"`
		HMAC    string `json:"hmac_key"`
	}
	getJSON(t, base+"/api/v1/ca/eab", readToken(t, filepath.Join(dir, "data")), &keys)
	if len(keys) != 1 || keys[0].ID != string(kid[1]) || keys[0].Account == "" || keys[0].HMAC != "" {
		t.Errorf("the EAB keys listed: %+v, want the one, bound, without its secret", keys)
	}
}
