package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/internal/testenv"
)

// trustSite signs the zones and serves NTS; %[1]s is the data directory, then the
// ports: API, DNS, NTP, NTS-KE, CA. The ntp keys follow (%[7]s).
const trustSite = `domain: k8s.example.com
data_dir: %[1]s
api: {listen: "127.0.0.1:%[2]d"}
dns:
  listen: ["127.0.0.1:%[3]d"]
  dnssec: true
ntp:
  listen: ["127.0.0.1:%[4]d"]
  chronyd: none
  nts: true
  nts_listen: ["127.0.0.1:%[5]d"]
%[7]s
ca: {listen: "127.0.0.1:%[6]d", name: ca.k8s.example.com}
subnets:
  - {name: vm, cidr: 10.0.40.0/24, gateway: 10.0.40.1}
hosts:
  - {name: cp01, ip: 10.0.40.10, mac: "52:54:00:00:40:10"}
`

// trustLab is an infrad serving trustSite from dir, its API at base.
type trustLab struct {
	dir, base         string
	dns, ntp, nts, ca int
}

// serveTrust serves trustSite with the ntp keys given, on free ports; it does not wait.
func serveTrust(t *testing.T, ntpKeys string) trustLab {
	t.Helper()
	l := trustLab{dir: t.TempDir(), dns: testenv.FreePort(t), ntp: testenv.FreePort(t), nts: testenv.FreePort(t), ca: testenv.FreePort(t)}
	api := testenv.FreePort(t)
	l.base = fmt.Sprintf("http://127.0.0.1:%d", api)
	site := filepath.Join(l.dir, "site.yaml")
	os.WriteFile(site, fmt.Appendf(nil, trustSite, filepath.Join(l.dir, "data"), api, l.dns, l.ntp, l.nts, l.ca, ntpKeys), 0o644)
	start(t, l.dir, "serve", "-c", site)
	return l
}

// TestTrustOfNamesAndTime is how a node trusts the site: the DS records from `infrad
// export ds` anchor Unbound, which validates the site's names; the chrony.conf from
// `infrad export chrony`, with the root from the API, gets chronyd authenticated
// time over NTS.
func TestTrustOfNamesAndTime(t *testing.T) {
	testenv.Need(t, "unbound", "chronyd", "chronyc")
	l := serveTrust(t, "  local_stratum: 10\n  rate_limit: 0")
	waitReady(t, l.base)
	token := readToken(t, filepath.Join(l.dir, "data"))

	t.Run("names: export ds anchors Unbound", func(t *testing.T) {
		p := start(t, l.dir, "export", "--api", l.base, "--token", token, "ds")
		if code := p.wait(t, 30*time.Second); code != exitOK {
			t.Fatalf("export ds: exit %d\n%s", code, p.output.String())
		}
		var anchors []string
		for _, line := range strings.Split(p.output.String(), "\n") {
			if f := strings.Fields(line); len(f) == 8 && f[3] == "DS" {
				anchors = append(anchors, line)
			}
		}
		if len(anchors) != 2 { // the domain and its reverse zone
			t.Fatalf("export ds gave %d DS records, want 2:\n%s", len(anchors), p.output.String())
		}
		port := testenv.Unbound(t, fmt.Sprintf("127.0.0.1@%d", l.dns), []string{"k8s.example.com.", "40.0.10.in-addr.arpa."}, anchors, time.Time{})
		for _, q := range []struct {
			name  string
			qtype uint16
		}{{"cp01.k8s.example.com.", dns.TypeA}, {"10.40.0.10.in-addr.arpa.", dns.TypePTR}, {"nope.k8s.example.com.", dns.TypeA}} {
			if r := testenv.Resolve(t, port, q.name, q.qtype); !r.AuthenticatedData || r.Rcode != dns.RcodeSuccess {
				t.Errorf("%s through Unbound: want NOERROR with ad:\n%s", q.name, r)
			}
		}
	})

	t.Run("time: export chrony gets chronyd NTS", func(t *testing.T) {
		p := start(t, l.dir, "export", "--api", l.base, "--token", token, "--server", "127.0.0.1", "chrony")
		if code := p.wait(t, 30*time.Second); code != exitOK {
			t.Fatalf("export chrony: exit %d\n%s", code, p.output.String())
		}
		conf := p.output.String()
		if want := fmt.Sprintf("server 127.0.0.1 iburst nts ntsport %d\n", l.nts); !strings.Contains(conf, want) {
			t.Fatalf("export chrony lacks %q:\n%s", want, conf)
		}
		resp, err := http.Get(l.base + "/api/v1/ca/root.pem")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET root.pem: %v %v", resp, err)
		}
		root, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cdir := t.TempDir()
		os.Chmod(cdir, 0o700)
		os.WriteFile(filepath.Join(cdir, "root.pem"), root, 0o644)
		// The export as a node would install it, in the test's own directory; the
		// clock left alone (-x), commands through a socket of its own.
		sock := filepath.Join(cdir, "chronyd.sock")
		conf = strings.NewReplacer("/etc/chrony/infrad-root.pem", filepath.Join(cdir, "root.pem"),
			"/var/lib/chrony", cdir, " iburst nts", " iburst minpoll -4 maxpoll -4 nts").Replace(conf)
		conf += fmt.Sprintf("cmdport 0\nbindcmdaddress %s\nport 0\npidfile %s\n", sock, filepath.Join(cdir, "chronyd.pid"))
		os.WriteFile(filepath.Join(cdir, "chrony.conf"), []byte(conf), 0o644)
		startCmd(t, cdir, "chronyd", "-x", "-d", "-u", "root", "-f", filepath.Join(cdir, "chrony.conf"))
		good := regexp.MustCompile(`Total good RX\s*:\s*[1-9]`)
		testenv.WaitFor(t, "chronyd to take an authenticated sample", func() bool {
			out, _ := exec.Command("chronyc", "-h", sock, "-n", "ntpdata", "127.0.0.1").CombinedOutput()
			return strings.Contains(string(out), "Authenticated   : Yes") && good.Match(out)
		})
	})
}

// TestCheckTrust: `infrad check` on a node checks what its validating resolver and its
// chronyd will: the node's name signed by the zone's keys, and time authenticated by
// NTS with the site's root.
func TestCheckTrust(t *testing.T) {
	l := serveTrust(t, "  local_stratum: 10")
	waitReady(t, l.base)
	p := start(t, l.dir, "check", "--server", "127.0.0.1", "--dns-port", fmt.Sprint(l.dns), "--ntp-port", fmt.Sprint(l.ntp),
		"--nts-port", fmt.Sprint(l.nts), "--api", l.base, "--ca-port", fmt.Sprint(l.ca), "--name", "cp01", "--outside", "outside.test")
	p.wait(t, 30*time.Second) // forwarding fails: the site has no forwarders
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`ok +signed name +cp01\.k8s\.example\.com\. A signed by key \d+, valid until`),
		regexp.MustCompile(`ok +NTS +authenticated time, `),
	} {
		if !want.MatchString(p.output.String()) {
			t.Errorf("check does not say %s:\n%s", want, p.output.String())
		}
	}
}

// TestSigningPausedWithoutTime: with no time source (leap 3), /readyz says DNSSEC
// signing is paused, and answers go on.
func TestSigningPausedWithoutTime(t *testing.T) {
	l := serveTrust(t, "")
	testenv.WaitFor(t, "/readyz to say signing is paused", func() bool {
		resp, err := http.Get(l.base + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		// (Not ready for want of time, so readiness does not say it has caught up with
		// its log since its start: until then DNS answers SERVFAIL, "behind".)
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "signing is paused") &&
			!strings.Contains(string(body), `"behind": true`)
	})
	r, err := dns.Exchange(new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA), fmt.Sprintf("127.0.0.1:%d", l.dns))
	if err != nil || len(r.Answer) != 1 {
		t.Errorf("an answer while signing is paused: %v\n%s", err, r)
	}
}

// TestClusterSharesItsTrust: three boxes sign with the same keys and open each other's
// NTS cookies. delv, trusting the DS records one box exports, validates every box's
// answers; chronyd, trusting the root, takes authenticated time from each box; and a
// cookie from one box's NTS-KE is good at another box's NTP (bench/ntpload, which
// can send them to different boxes).
func TestClusterSharesItsTrust(t *testing.T) {
	testenv.Need(t, "delv", "chronyd", "chronyc")
	l := newClusterLab(t, 3, false)
	raw, err := os.ReadFile(l.site)
	if err != nil {
		t.Fatal(err)
	}
	trusted := strings.Replace(string(raw), "  transfer_from: [10.78.0.0/16]\n", "  transfer_from: [10.78.0.0/16]\n  dnssec: true\n", 1)
	trusted = strings.Replace(trusted, "chronyd: none}", "chronyd: none, rate_limit: 0, nts: true, nts_listen: [\"0.0.0.0:4460\"]}", 1)
	writeFile(t, l.site, trusted)
	l.form(t)

	var ds []string
	for _, n := range l.nodes {
		var st struct{ DS []string }
		out, err := l.curl(n, "http://127.0.0.1:8080/api/v1/dns/dnssec")
		if err != nil || json.Unmarshal([]byte(out), &st) != nil || len(st.DS) == 0 {
			t.Fatalf("%s's DNSSEC: %v %s", n.name, err, out)
		}
		if ds == nil {
			ds = st.DS
		} else if !slices.Equal(ds, st.DS) {
			t.Fatalf("%s's DS records differ from %s's:\n%v\n%v", n.name, l.nodes[0].name, st.DS, ds)
		}
	}
	var anchor string
	for _, d := range ds {
		if f := strings.Fields(d); f[0] == "lab.test." {
			anchor = fmt.Sprintf("trust-anchors {\n  %q initial-ds %s %s %s %q;\n};\n", f[0], f[4], f[5], f[6], f[7])
		}
	}
	anchors := filepath.Join(l.dir, "anchors.conf")
	writeFile(t, anchors, anchor)
	for _, n := range l.nodes {
		out, err := exec.Command("ip", "netns", "exec", l.cli, "delv", "@"+n.addr, "-p", "1053", "-a", anchors, "+root=lab.test", "cp01.lab.test", "A").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "; fully validated") || !strings.Contains(string(out), "10.78.0.10") {
			t.Errorf("delv against %s: %v\n%s", n.name, err, out)
		}
	}

	// A KSK roll through one node: every node serves the same DNSKEY set, signed by
	// both KSKs, at the same serial, and the old anchor still validates at each.
	if out, err := l.curl(l.nodes[1], "-f", "-X", "POST", "http://127.0.0.1:8080/api/v1/dns/dnssec/ksk/roll"); err != nil {
		t.Fatalf("roll the KSK through %s: %v %s", l.nodes[1].name, err, out)
	}
	apex := func(n *clusterNode) string { // the DNSKEY set and the SOA serial, as dig shows them
		out, _ := exec.Command("ip", "netns", "exec", l.cli, "dig", "@"+n.addr, "-p", "1053", "+short", "+tries=1", "+time=2", "lab.test", "DNSKEY").Output()
		keys := strings.Split(strings.TrimSpace(string(out)), "\n")
		slices.Sort(keys)
		soa, _ := exec.Command("ip", "netns", "exec", l.cli, "dig", "@"+n.addr, "-p", "1053", "+short", "+tries=1", "+time=2", "lab.test", "SOA").Output()
		return strings.Join(keys, "\n") + "\n" + string(soa)
	}
	testenv.WaitFor(t, "one DNSKEY set with two KSKs on every node", func() bool {
		first := apex(l.nodes[0])
		return strings.Count(first, "257 3 13 ") == 2 && first == apex(l.nodes[1]) && first == apex(l.nodes[2])
	})
	for _, n := range l.nodes {
		var st struct{ KSK struct{ Stage string } }
		if out, err := l.curl(n, "http://127.0.0.1:8080/api/v1/dns/dnssec"); err != nil || json.Unmarshal([]byte(out), &st) != nil || st.KSK.Stage != "published" {
			t.Errorf("%s's KSK roll: %v %s", n.name, err, out)
		}
		out, err := exec.Command("ip", "netns", "exec", l.cli, "delv", "@"+n.addr, "-p", "1053", "-a", anchors, "+root=lab.test", "cp01.lab.test", "A").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "; fully validated") {
			t.Errorf("delv with the old anchor against %s during the roll: %v\n%s", n.name, err, out)
		}
	}

	root, err := l.curl(l.nodes[0], "http://127.0.0.1:8080/api/v1/ca/root.pem")
	if err != nil || !strings.Contains(root, "BEGIN CERTIFICATE") {
		t.Fatalf("the root: %v %s", err, root)
	}
	rootPath := filepath.Join(l.dir, "root.pem")
	writeFile(t, rootPath, root)
	cdir := filepath.Join(l.dir, "chrony")
	os.Mkdir(cdir, 0o700)
	sock := filepath.Join(cdir, "chronyd.sock")
	var conf strings.Builder
	for _, n := range l.nodes {
		fmt.Fprintf(&conf, "server %s iburst minpoll -4 maxpoll -4 nts\n", n.addr)
	}
	fmt.Fprintf(&conf, "ntstrustedcerts %s\nnosystemcert\ncmdport 0\nbindcmdaddress %s\nport 0\npidfile %s\n", rootPath, sock, filepath.Join(cdir, "chronyd.pid"))
	writeFile(t, filepath.Join(cdir, "chrony.conf"), conf.String())
	startCmd(t, cdir, "ip", "netns", "exec", l.cli, "chronyd", "-x", "-d", "-u", "root", "-f", filepath.Join(cdir, "chrony.conf"))
	good := regexp.MustCompile(`Total good RX\s*:\s*[1-9]`)
	for _, n := range l.nodes {
		testenv.WaitFor(t, "chronyd to take authenticated time from "+n.name, func() bool {
			out, _ := exec.Command("chronyc", "-h", sock, "-n", "ntpdata", n.addr).CombinedOutput()
			return strings.Contains(string(out), "Authenticated   : Yes") && good.Match(out)
		})
	}

	load := filepath.Join(l.dir, "ntpload")
	if out, err := exec.Command("go", "build", "-o", load, "../../bench/ntpload").CombinedOutput(); err != nil {
		t.Fatalf("build ntpload: %v\n%s", err, out)
	}
	for _, n := range l.nodes {
		out, err := exec.Command("ip", "netns", "exec", l.cli, load, "-nts", l.nodes[0].addr+":4460", "-root", rootPath,
			"-server", n.addr+":1123", "-sockets", "1", "-batch", "1", "-duration", "1s").CombinedOutput()
		if err != nil || strings.HasPrefix(string(out), "replies/s 0 ") {
			t.Errorf("a cookie from %s's NTS-KE at %s's NTP: %v\n%s", l.nodes[0].name, n.name, err, out)
		}
	}
}
