package main

import (
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

// nodeSite serves DNS, NTP and ACME on the lab's network and the API on loopback, as
// every example site does: a node reaches the first three and not the API.
const nodeSite = `domain: lab.test
data_dir: %s
api: {listen: "127.0.0.1:8080"}
dns:
  listen: ["10.77.0.1:53"]
  zones: [example.test]
  records:
    - {name: www.example.test., type: A, value: 10.77.0.80}
ntp: {listen: ["10.77.0.1:123"], local_stratum: 10, chronyd: none}
ca: {listen: "10.77.0.1:443"}
subnets:
  - {name: lab, cidr: 10.77.0.0/24}
hosts:
  - {name: node1, ip: 10.77.0.10}
`

// TestFromANode: on a node (its own network namespace, resolving through infrad's
// DNS) with infrad's API on the infrad box's loopback, infrad check passes, taking the
// root from the CA's listener; the chrony.conf that export writes on the infrad box
// gives the node's chronyd its time; and lego and certbot get the node a certificate
// from the ACME directory by its name (ca.lab.test, which no record of the site
// gives), http-01 on port 80.
func TestFromANode(t *testing.T) {
	testenv.NeedRoot(t, "ip", "curl", "chronyd", "chronyc", "lego", "certbot")
	l := newLab(t)
	sh(t, "ip", "-n", l.cli, "addr", "add", "10.77.0.10/24", "dev", clientIf)
	// ip netns exec puts /etc/netns/<ns>/resolv.conf in place of /etc/resolv.conf.
	etc := filepath.Join("/etc/netns", l.cli)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	writeFile(t, filepath.Join(etc, "resolv.conf"), "nameserver 10.77.0.1\n")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "site.yaml"), fmt.Appendf(nil, nodeSite, filepath.Join(dir, "data")), 0o644)
	l.serveIn(t, dir)

	// --outside: a name the site serves in another zone (no upstream is reachable here).
	c := startCmd(t, dir, "ip", "netns", "exec", l.cli, binary, "check", "--server", "10.77.0.1", "--dns-port", "53",
		"--ntp-port", "123", "--ca-port", "443", "--name", "node1", "--outside", "www.example.test")
	if code := c.wait(t, 60*time.Second); code != exitOK || !strings.Contains(c.output.String(), "from https://10.77.0.1:443/roots.pem") {
		t.Errorf("check on the node: exit %d, want every check ok and the root from the CA:\n%s", code, c.output.String())
	}

	e := startCmd(t, dir, "ip", "netns", "exec", l.srv, binary, "export", "--api", "http://127.0.0.1:8080", "--data", filepath.Join(dir, "data"), "chrony")
	if code := e.wait(t, 30*time.Second); code != exitOK || !strings.Contains(e.output.String(), "server 10.77.0.1 ") {
		t.Fatalf("export chrony on the infrad box: exit %d, want the advertised address:\n%s", code, e.output.String())
	}
	cdir := filepath.Join(dir, "chrony")
	os.Mkdir(cdir, 0o700)
	sock := filepath.Join(cdir, "chronyd.sock")
	conf := regexp.MustCompile(`(?m)^server (\S+).*$`).ReplaceAllString(e.output.String(), "server $1 iburst minpoll -4 maxpoll -4")
	conf += fmt.Sprintf("cmdport 0\nbindcmdaddress %s\nport 0\npidfile %s\n", sock, filepath.Join(cdir, "chronyd.pid"))
	writeFile(t, filepath.Join(cdir, "chrony.conf"), conf)
	startCmd(t, cdir, "ip", "netns", "exec", l.cli, "chronyd", "-x", "-d", "-u", "root", "-f", filepath.Join(cdir, "chrony.conf"))
	good := regexp.MustCompile(`Total good RX\s*:\s*[1-9]`)
	testenv.WaitFor(t, "the node's chronyd to take time from 10.77.0.1", func() bool {
		out, _ := exec.Command("chronyc", "-h", sock, "-n", "ntpdata", "10.77.0.1").CombinedOutput()
		return good.Match(out)
	})

	root := filepath.Join(dir, "root.pem")
	writeFile(t, root, sh(t, "ip", "netns", "exec", l.srv, "curl", "-sf", "http://127.0.0.1:8080/api/v1/ca/root.pem"))
	legoDir := filepath.Join(dir, "lego")
	lego := startCmd(t, dir, "ip", "netns", "exec", l.cli, "env", "LEGO_CA_CERTIFICATES="+root, "lego", "--server", "https://ca.lab.test/acme/acme/directory",
		"--accept-tos", "--email", "ops@lab.test", "--domains", "node1.lab.test", "--http", "--http.port", ":80", "--path", legoDir, "run")
	if code := lego.wait(t, 120*time.Second); code != 0 {
		t.Errorf("lego on the node: exit %d\n%s", code, lego.output.String())
	}
	work := filepath.Join(dir, "certbot")
	certbot := startCmd(t, dir, "ip", "netns", "exec", l.cli, "env", "REQUESTS_CA_BUNDLE="+root, "certbot", "certonly", "--standalone",
		"--non-interactive", "--agree-tos", "--register-unsafely-without-email", "--server", "https://ca.lab.test/acme/acme/directory",
		"-d", "node1.lab.test", "--http-01-port", "80", "--config-dir", work, "--work-dir", work, "--logs-dir", work)
	if code := certbot.wait(t, 120*time.Second); code != 0 {
		t.Errorf("certbot on the node: exit %d\n%s", code, certbot.output.String())
	}
	for _, crt := range []string{filepath.Join(legoDir, "certificates", "node1.lab.test.crt"), filepath.Join(work, "live", "node1.lab.test", "fullchain.pem")} {
		if out, err := exec.Command("openssl", "verify", "-CAfile", root, "-untrusted", crt, crt).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", crt, err, out)
		}
	}
}
