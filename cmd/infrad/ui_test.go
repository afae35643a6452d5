package main

// The UI end to end: infrad in a namespace of its own, Chromium driven by Playwright
// (web/test/ui.test.mjs) signing in with the link infrad logged, and a DHCP client
// whose lease the leases page must show.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/testenv"
)

// uiSite is the lab's site file with none of its objects but a record and a pods
// subnet, owned by the file: the browser builds the rest, the lab's subnet first (its
// DHCP pool then serves the client).
const uiSite = `domain: lab.test
data_dir: %s
api: {listen: "127.0.0.1:8080"}
dns:
  listen: ["127.0.0.1:1053"]
  advertise: 10.77.0.1
  dnssec: true
  records:
    - {name: www, type: CNAME, value: infra}
ntp: {listen: ["127.0.0.1:1123"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:8443"}
dhcp: {interfaces: [br0], lease_time: 1h}
boot:
  profiles:
    - {name: debian, kernel: debian/vmlinuz, initrd: [debian/initrd.gz]}
    - {name: rescue, url: "http://mirror.lab.test/rescue.iso"}
subnets:
  - {name: pods, cidr: 10.244.0.0/16, purpose: pods}
`

func TestUI(t *testing.T) {
	testenv.NeedRoot(t, "ip", "dhclient", "node", "/usr/bin/chromium", "curl")
	tests, _ := filepath.Abs("../../web/test")
	if _, err := os.Stat(filepath.Join(tests, "node_modules", "playwright-core")); err != nil {
		if os.Getenv("INFRAD_E2E") == "1" {
			t.Fatal("playwright-core is not installed: make test runs npm ci in web/test")
		}
		t.Skip("playwright-core is not installed (make test runs npm ci in web/test)")
	}
	l := newLab(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "site.yaml"), fmt.Appendf(nil, uiSite, filepath.Join(dir, "data")), 0o644)
	server := l.serveIn(t, dir)
	link := regexp.MustCompile(`http://127\.0\.0\.1:8080/ui/#token=[0-9a-f]+`).FindString(server.output.String())
	if link == "" {
		t.Fatalf("infrad logged no sign-in link:\n%s", server.output.String())
	}

	l.ipv6(t)
	l.setMAC(t, "52:54:00:77:00:99")
	linkLocal(t, l)
	client, client6 := filepath.Join(dir, "client"), filepath.Join(dir, "client6")
	lease, _ := json.Marshal(append([]string{"ip"}, l.dhclientArgs(t, client, "laptop", "-1")...))
	lease6, _ := json.Marshal(append([]string{"ip"}, l.dhclient6Args(t, client6, "laptop6", "-1")...))
	t.Cleanup(func() { // dhclient -1 goes to the background once it has a lease
		for _, d := range []string{client, client6} {
			if pid, err := os.ReadFile(filepath.Join(d, "pid")); err == nil {
				exec.Command("kill", strings.TrimSpace(string(pid))).Run()
			}
		}
	})

	shots, _ := filepath.Abs("../../web/test/screenshots")
	os.MkdirAll(shots, 0o755)
	cmd := exec.Command("ip", "netns", "exec", l.srv, "node", "--test", "--test-reporter", "spec", "ui.test.mjs")
	cmd.Dir = tests
	cmd.Env = append(os.Environ(), "SIGNIN_URL="+link, "LEASE_CMD="+string(lease), "LEASE6_CMD="+string(lease6), "SHOTS="+shots,
		"API_TOKEN="+readToken(t, filepath.Join(dir, "data")))
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(6 * time.Minute):
		cmd.Process.Kill()
		<-done
	}
	t.Logf("playwright:\n%s\nscreenshots in %s", out, shots)
	if err != nil {
		t.Errorf("the UI tests failed: %v", err)
	}
}

// TestAPIUsesTLSOffLoopback serves the API on the lab's bridge address: it must speak
// TLS with a certificate from the site's own CA, and refuse plain HTTP.
func TestAPIUsesTLSOffLoopback(t *testing.T) {
	testenv.NeedRoot(t, "ip", "curl")
	l := newLab(t)
	dir := t.TempDir()
	site := strings.Replace(labSiteFor(filepath.Join(dir, "data")), `api: {listen: "127.0.0.1:8080"}`, `api: {listen: "10.77.0.1:8080"}`, 1)
	os.WriteFile(filepath.Join(dir, "site.yaml"), []byte(site), 0o644)
	p := startCmd(t, dir, "ip", "netns", "exec", l.srv, binary, "serve", "-c", filepath.Join(dir, "site.yaml"))
	root := filepath.Join(dir, "data", "ca", "root.crt")
	testenv.WaitFor(t, "the API over TLS", func() bool {
		out, err := exec.Command("ip", "netns", "exec", l.srv, "curl", "-sf", "--cacert", root, "https://10.77.0.1:8080/readyz").Output()
		return err == nil && strings.Contains(string(out), `"ready": true`)
	})
	if out, err := exec.Command("ip", "netns", "exec", l.srv, "curl", "-sf", "http://10.77.0.1:8080/readyz").Output(); err == nil {
		t.Errorf("plain HTTP off loopback answered: %s", out)
	}
	if !strings.Contains(p.output.String(), "https://10.77.0.1:8080/ui/#token=") {
		t.Errorf("the sign-in link is not https:\n%s", p.output.String())
	}
	// infrad's own commands trust the site's root from the data directory, or --ca.
	copy := filepath.Join(dir, "copy.db")
	if out, err := exec.Command("ip", "netns", "exec", l.srv, binary, "backup", "--api", "https://10.77.0.1:8080",
		"--data", filepath.Join(dir, "data"), copy).CombinedOutput(); err != nil {
		t.Errorf("infrad backup over TLS: %v\n%s", err, out)
	}
	token, _ := os.ReadFile(filepath.Join(dir, "data", "api-token"))
	if out, err := exec.Command("ip", "netns", "exec", l.srv, binary, "export", "--api", "https://10.77.0.1:8080",
		"--token", strings.TrimSpace(string(token)), "--ca", root, "no-proxy").CombinedOutput(); err != nil || !strings.Contains(string(out), "10.77.0.0/24") {
		t.Errorf("infrad export --ca over TLS: %v\n%s", err, out)
	}
	if out, err := exec.Command("ip", "netns", "exec", l.srv, binary, "export", "--api", "https://10.77.0.1:8080",
		"--token", strings.TrimSpace(string(token)), "--data", t.TempDir(), "no-proxy").CombinedOutput(); err == nil {
		t.Errorf("infrad export trusted the API without the site's root:\n%s", out)
	}
}
