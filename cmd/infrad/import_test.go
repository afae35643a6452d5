package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/internal/testenv"
)

// importdata is the importer's testdata: sources shaped like the ones users post.
const importdata = "../../pkg/importer/testdata"

// copyTestdata copies the importer's testdata files into dir.
func copyTestdata(t *testing.T, dir string, files ...string) {
	t.Helper()
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(importdata, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// runImport runs `infrad import` in the server namespace ns ("": here) and returns
// its output and exit code.
func runImport(t *testing.T, ns string, args ...string) (string, int) {
	t.Helper()
	argv := append([]string{binary, "import"}, args...)
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// reserved runs dhclient as each MAC in turn and returns the address each is given.
func (l *lab) reserved(t *testing.T, dir string, macs []string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, mac := range macs {
		l.setMAC(t, mac)
		c := l.dhclient(t, filepath.Join(dir, mac), "", "-d", "-1")
		testenv.WaitFor(t, mac+" bound", func() bool { return c.got("BOUND") != nil })
		got[mac] = c.got("BOUND")["new_ip_address"]
		c.stop()
	}
	return got
}

// answers asks the server on 127.0.0.1:1053 in the lab's server namespace each
// question, and returns the answers, each sorted.
func (l *lab) answers(questions [][]string) map[string]string {
	got := map[string]string{}
	for _, q := range questions {
		lines := strings.Split(l.dig(q...), "\n")
		slices.Sort(lines)
		got[strings.Join(q, " ")] = strings.Join(lines, " | ")
	}
	return got
}

// TestImportFromDnsmasq moves a dnsmasq site into infrad with one command: dnsmasq
// itself serves the configuration first, then infrad serves what the import wrote,
// and dhclient and dig see the same reserved addresses and the same answers.
func TestImportFromDnsmasq(t *testing.T) {
	testenv.NeedRoot(t, "ip", "dnsmasq", "dhclient", "dig")
	l := newLab(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "dnsmasq")
	os.MkdirAll(src, 0o755)
	copyTestdata(t, src, "dnsmasq/dnsmasq.conf", "dnsmasq/lab.hosts")
	conf := filepath.Join(src, "dnsmasq.conf")
	// dnsmasq opens addn-hosts from its working directory: give it the file's path.
	raw, _ := os.ReadFile(conf)
	os.WriteFile(conf, bytes.ReplaceAll(raw, []byte("addn-hosts=lab.hosts"), []byte("addn-hosts="+filepath.Join(src, "lab.hosts"))), 0o644)

	macs := []string{"52:54:00:77:00:10", "52:54:00:77:00:11", "52:54:00:77:00:21", "52:54:00:77:00:22"}
	questions := [][]string{
		{"cp01.lab.test"}, {"cp02.lab.test"}, {"worker01.lab.test"}, {"worker02.lab.test"}, {"infra.lab.test"},
		{"mon.lab.test"}, {"mail.lab.test"}, {"registry.lab.test"}, {"outside.lab.test"},
		{"apps.lab.test"}, {"grafana.apps.lab.test"}, {"grafana.lab.test"}, {"docs.lab.test"},
		{"_etcd-server-ssl._tcp.lab.test", "SRV"}, {"lab.test", "TXT"}, {"lab.test", "MX"},
		{"-x", "10.77.0.1"}, {"-x", "10.77.0.10"}, {"-x", "10.77.0.22"}, {"-x", "10.77.0.30"},
	}

	// Before: dnsmasq serves the lab.
	dnsmasq := startCmd(t, dir, "ip", "netns", "exec", l.srv, "dnsmasq", "--keep-in-foreground", "--log-facility=-", "--user=root",
		"--conf-file="+conf, "--port=1053", "--listen-address=127.0.0.1", "--interface=br0", "--bind-interfaces",
		"--dhcp-leasefile="+filepath.Join(dir, "dnsmasq.leases"), "--pid-file="+filepath.Join(dir, "dnsmasq.pid"))
	testenv.WaitFor(t, "dnsmasq answering", func() bool { return l.dig("infra.lab.test") != "" })
	before := l.reserved(t, filepath.Join(dir, "before"), macs)
	beforeAnswers := l.answers(questions) // (dnsmasq names a dhcp-host once it has leased: now)
	dnsmasq.cmd.Process.Signal(syscall.SIGTERM)
	<-dnsmasq.done

	// The move: one command writes the site file, which validate accepts.
	site := filepath.Join(dir, "site.yaml")
	os.WriteFile(site, fmt.Appendf(nil, "data_dir: %s\n%sdhcp: {interfaces: [br0]}\n", filepath.Join(dir, "data"), labServices), 0o644)
	out, code := runImport(t, "", "dnsmasq", conf, "--to", site)
	if code != 0 {
		t.Fatalf("infrad import: exit %d\n%s", code, out)
	}
	for _, want := range []string{"+ host cp01 10.77.0.10 52:54:00:77:00:10  (" + conf + ":24)", "? " + conf + ":40: log-queries: left out", "wrote " + site} {
		if !strings.Contains(out, want) {
			t.Errorf("the import's plan lacks %q:\n%s", want, out)
		}
	}
	if out, err := exec.Command(binary, "validate", "-c", site).CombinedOutput(); err != nil {
		t.Fatalf("infrad validate: %v\n%s", err, out)
	}

	// After: infrad serves what the import wrote.
	infrad := l.serveIn(t, dir)
	same := func(who, at string) {
		t.Helper()
		got := l.reserved(t, filepath.Join(dir, at), macs)
		for _, mac := range macs {
			if before[mac] == "" || got[mac] != before[mac] {
				t.Errorf("%s: dnsmasq gave %q, %s gives %q", mac, before[mac], who, got[mac])
			}
		}
		answers := l.answers(questions)
		for _, q := range questions {
			k := strings.Join(q, " ")
			if beforeAnswers[k] == "" || answers[k] != beforeAnswers[k] {
				t.Errorf("dig %s: dnsmasq answered %q, %s answers %q", k, beforeAnswers[k], who, answers[k])
			}
		}
	}
	same("infrad", "after")

	// And back: dnsmasq serving infrad's export of the site gives the same again.
	back := filepath.Join(dir, "back.conf")
	exported := sh(t, "ip", "netns", "exec", l.srv, binary, "export", "--data", filepath.Join(dir, "data"), "dnsmasq")
	os.WriteFile(back, []byte(exported), 0o644)
	infrad.cmd.Process.Signal(syscall.SIGTERM)
	<-infrad.done
	startCmd(t, dir, "ip", "netns", "exec", l.srv, "dnsmasq", "--keep-in-foreground", "--log-facility=-", "--user=root",
		"--conf-file="+back, "--port=1053", "--listen-address=127.0.0.1", "--interface=br0", "--bind-interfaces",
		"--dhcp-leasefile="+filepath.Join(dir, "back.leases"), "--pid-file="+filepath.Join(dir, "back.pid"))
	testenv.WaitFor(t, "dnsmasq answering from the export", func() bool { return l.dig("infra.lab.test") != "" })
	same("dnsmasq from infrad's export", "back")
	if t.Failed() {
		t.Logf("the export:\n%s", exported)
	}
}

// TestImportFromDhcpd moves an ISC dhcpd site, with its lease file, into a running
// infrad in one command: the clients dhcpd leased addresses to keep them (dhclient's
// INIT-REBOOT is answered with the same address), and the reserved ones get theirs.
func TestImportFromDhcpd(t *testing.T) {
	testenv.NeedRoot(t, "ip", "dhcpd", "dhclient", "dig", "curl")
	l := newLab(t)
	dir := t.TempDir()
	copyTestdata(t, dir, "dhcpd/dhcpd.conf", "dhcpd/dhcpd6.conf")
	conf, leases := filepath.Join(dir, "dhcpd.conf"), filepath.Join(dir, "dhcpd.leases")
	os.WriteFile(leases, nil, 0o644)
	// The testdata's DHCPv6 part is one dhcpd -6 takes (the golden import reads it).
	if out, err := exec.Command("dhcpd", "-6", "-t", "-cf", filepath.Join(dir, "dhcpd6.conf")).CombinedOutput(); err != nil {
		t.Errorf("dhcpd -6 -t refuses the testdata's dhcpd6.conf: %v\n%s", err, out)
	}

	// Before: dhcpd serves the lab; two clients take pool leases, cp01 its address.
	dhcpd := startCmd(t, dir, "ip", "netns", "exec", l.srv, "dhcpd", "-4", "-f", "-d", "-cf", conf, "-lf", leases, "-pf", filepath.Join(dir, "dhcpd.pid"), "br0")
	pool := map[string]string{"52:54:00:77:01:05": "laptop", "52:54:00:77:01:07": "phone"}
	before := map[string]string{}
	for mac, name := range pool {
		l.setMAC(t, mac)
		c := l.dhclient(t, filepath.Join(dir, mac), name, "-d", "-1")
		testenv.WaitFor(t, name+" bound by dhcpd, its lease written down", func() bool {
			lf, _ := os.ReadFile(filepath.Join(dir, mac, "leases")) // (dhclient writes it after its script)
			return c.got("BOUND") != nil && bytes.Contains(lf, []byte("fixed-address"))
		})
		before[mac] = c.got("BOUND")["new_ip_address"]
		c.stop() // no release: the client means to come back
	}
	cp01 := l.reserved(t, filepath.Join(dir, "cp01-before"), []string{"52:54:00:77:00:10"})["52:54:00:77:00:10"]
	dhcpd.cmd.Process.Signal(syscall.SIGTERM)
	<-dhcpd.done
	if cp01 != "10.77.0.10" || before["52:54:00:77:01:05"] == "" || before["52:54:00:77:01:07"] == "" {
		t.Fatalf("dhcpd gave cp01 %q and the pool clients %v", cp01, before)
	}

	// The move: infrad runs with the lab's services and no subnet; one command brings
	// dhcpd's subnets, hosts and live leases in.
	os.WriteFile(filepath.Join(dir, "site.yaml"), fmt.Appendf(nil, "domain: lab.test\ndata_dir: %s\n%sdhcp: {interfaces: [br0]}\n", filepath.Join(dir, "data"), labServices), 0o644)
	l.serveIn(t, dir)
	out, code := runImport(t, l.srv, "dhcpd", conf, leases, "--api", "--data", filepath.Join(dir, "data"))
	if code != 0 || !strings.Contains(out, "imported through http://127.0.0.1:8080: 2 subnets, 3 hosts, 0 records, 2 leases") {
		t.Fatalf("infrad import --api: exit %d\n%s", code, out)
	}

	// The leases are infrad's now: listed with their clients, and another client
	// asking for the laptop's address is given another.
	for _, ls := range l.leases(t, dir) {
		if mac, ok := map[string]string{before["52:54:00:77:01:05"]: "52:54:00:77:01:05", before["52:54:00:77:01:07"]: "52:54:00:77:01:07"}[ls.IP]; ok && ls.MAC != mac {
			t.Errorf("lease of %s: got %s, want dhcpd's client %s", ls.IP, ls.MAC, mac)
		}
	}
	l.setMAC(t, "52:54:00:77:01:99")
	args := l.dhclientArgs(t, filepath.Join(dir, "intruder"), "intruder", "-d", "-1")
	cf, _ := os.OpenFile(filepath.Join(dir, "intruder", "dhclient.conf"), os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(cf, "send dhcp-requested-address %s;\n", before["52:54:00:77:01:05"])
	cf.Close()
	intruder := &dhclient{dir: filepath.Join(dir, "intruder"), p: startCmd(t, dir, "ip", args...)}
	// (dhclient asks for the address in every message, its REQUEST of what it is
	// offered too: infrad refuses that with a NAK.)
	testenv.WaitFor(t, "the intruder answered", func() bool {
		return intruder.got("BOUND") != nil || strings.Contains(intruder.p.output.String(), "DHCPNAK")
	})
	if got := intruder.got("BOUND")["new_ip_address"]; got == before["52:54:00:77:01:05"] {
		t.Errorf("another client asked for the laptop's imported lease %s and was given it", got)
	}
	intruder.stop()

	// After: each pool client comes back with INIT-REBOOT and keeps its address.
	for mac, name := range pool {
		l.setMAC(t, mac)
		for _, reason := range []string{"reasons", "PREINIT", "BOUND"} { // (its lease file stays)
			os.Remove(filepath.Join(dir, mac, reason))
		}
		c := l.dhclient(t, filepath.Join(dir, mac), name, "-d", "-1")
		testenv.WaitFor(t, name+" back", func() bool { return c.got("REBOOT") != nil || c.got("BOUND") != nil })
		got := c.got("REBOOT")
		c.stop()
		if got == nil || got["new_ip_address"] != before[mac] {
			t.Errorf("%s (%s): dhcpd leased %s; after the move, INIT-REBOOT got %v (reasons: %s)", name, mac, before[mac], got, c.reasons())
		}
	}
	if got := l.reserved(t, filepath.Join(dir, "cp01-after"), []string{"52:54:00:77:00:10"})["52:54:00:77:00:10"]; got != "10.77.0.10" {
		t.Errorf("cp01: got %s after the move, want its fixed-address 10.77.0.10", got)
	}
	if got := l.dig("laptop.lab.test"); got != before["52:54:00:77:01:05"] {
		t.Errorf("laptop.lab.test: got %q, want the imported lease's %s", got, before["52:54:00:77:01:05"])
	}
	// BIND's zone follows dhcpd in: what the site holds already (cp01 and cp02, their
	// PTRs) is left out, said; the rest is added, the names in the subnet as hosts.
	copyTestdata(t, dir, "zone/db.lab.test", "zone/db.0.77.10.in-addr.arpa")
	out, code = runImport(t, l.srv, "zone", filepath.Join(dir, "db.lab.test"), filepath.Join(dir, "db.0.77.10.in-addr.arpa"), "--api", "--data", filepath.Join(dir, "data"))
	if code != 0 || !strings.Contains(out, "cp01.lab.test. at 10.77.0.10 is the site's host cp01 already: left out") || !strings.Contains(out, "+ host cp03 10.77.0.12") {
		t.Errorf("the zone after dhcpd: exit %d\n%s", code, out)
	}
	for q, want := range map[string]string{"cp03.lab.test": "10.77.0.12", "-x 10.77.0.12": "cp03.lab.test.", "-x 10.77.0.10": "cp01.lab.test.", "api.lab.test": "10.77.0.100\n10.77.0.101"} {
		if got := l.dig(strings.Fields(q)...); got != want {
			t.Errorf("dig %s: got %q, want %q", q, got, want)
		}
	}

	// The way back: infrad's export is a dhcpd.conf dhcpd takes, with cp01's reservation.
	back := filepath.Join(dir, "back.conf")
	exported := sh(t, "ip", "netns", "exec", l.srv, binary, "export", "--data", filepath.Join(dir, "data"), "dhcpd")
	os.WriteFile(back, []byte(exported), 0o644)
	if out, err := exec.Command("dhcpd", "-4", "-t", "-cf", back).CombinedOutput(); err != nil {
		t.Errorf("dhcpd -t refuses infrad's export: %v\n%s\n%s", err, out, exported)
	}
	if !strings.Contains(exported, "host cp01 {\n  hardware ethernet 52:54:00:77:00:10;\n  fixed-address 10.77.0.10;") {
		t.Errorf("the export lacks cp01's reservation:\n%s", exported)
	}

	var log struct {
		Changes []struct{ Source, Command string }
	}
	l.api(t, dir, "/api/v1/changes?limit=100", &log)
	imports := slices.DeleteFunc(log.Changes, func(e struct{ Source, Command string }) bool { return e.Command != "Import" })
	if len(imports) != 2 || !strings.HasPrefix(imports[0].Source, "import zone") || !strings.HasPrefix(imports[1].Source, "import dhcpd") {
		t.Errorf("the change log's imports: got %+v, want two, by \"import dhcpd\" then \"import zone\"", imports)
	}
}

// TestImportFromBIND transfers a zone from BIND (with TSIG) into a site file; infrad
// serving it transfers the same records as BIND, but for what infrad owns itself (the
// SOA, the apex NS and its glue) and what the import named as not translated.
func TestImportFromBIND(t *testing.T) {
	testenv.Need(t, "named")
	dir := t.TempDir()
	copyTestdata(t, dir, "zone/db.lab.test", "zone/db.0.77.10.in-addr.arpa")
	const secret = "c2VjcmV0LXRyYW5zZmVyLWtleS0xMjM0NTY3ODkwYWI="
	bindPort := testenv.FreePort(t)
	conf := fmt.Sprintf(`key "xfer" { algorithm hmac-sha256; secret %q; };
options {
	directory %q;
	pid-file none;
	listen-on port %d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	allow-transfer { key xfer; };
};
controls { };
zone "lab.test" { type primary; file "db.lab.test"; };
zone "0.77.10.in-addr.arpa" { type primary; file "db.0.77.10.in-addr.arpa"; };
`, secret, dir, bindPort)
	os.WriteFile(filepath.Join(dir, "named.conf"), []byte(conf), 0o644)
	named := testenv.Start(t, exec.Command("named", "-g", "-c", filepath.Join(dir, "named.conf")))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("named:\n%s", named)
		}
	})
	bind := fmt.Sprintf("127.0.0.1:%d", bindPort)
	tsig := "xfer:hmac-sha256:" + secret
	testenv.WaitFor(t, "BIND serving lab.test", func() bool { _, err := axfr(bind, "lab.test.", tsig); return err == nil })

	// An unsigned transfer is refused by BIND, and the import says so, changing nothing.
	site := filepath.Join(dir, "site.yaml")
	dnsPort := testenv.FreePort(t)
	starter := fmt.Sprintf(`domain: lab.test
data_dir: %s
api: {listen: "127.0.0.1:%d"}
dns: {listen: ["127.0.0.1:%d"], advertise: 10.77.0.1, transfer_from: [127.0.0.0/8]}
ntp: {listen: ["127.0.0.1:%d"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:%d"}
subnets:
  - {name: lab, cidr: 10.77.0.0/24}
  - {name: lab6, cidr: "fd00:77::/64"}
`, filepath.Join(dir, "data"), testenv.FreePort(t), dnsPort, testenv.FreePort(t), testenv.FreePort(t))
	os.WriteFile(site, []byte(starter), 0o644)
	if out, code := runImport(t, "", "zone", "axfr://"+bind+"/lab.test", "--to", site); code == 0 || !strings.Contains(out, "transfer lab.test.") {
		t.Errorf("an unsigned transfer: exit %d, want a failure naming the transfer\n%s", code, out)
	}
	if got, _ := os.ReadFile(site); string(got) != starter {
		t.Errorf("a failed import changed the site file:\n%s", got)
	}

	out, code := runImport(t, "", "zone", "axfr://"+bind+"/lab.test", "axfr://"+bind+"/0.77.10.in-addr.arpa", "--tsig", tsig, "--to", site)
	if code != 0 {
		t.Fatalf("infrad import zone: exit %d\n%s", code, out)
	}
	for _, want := range []string{"+ host cp03 10.77.0.12 fd00:77::12", "+ record api A 10.77.0.100", "CAA record of lab.test.: not translated"} {
		if !strings.Contains(out, want) {
			t.Errorf("the plan lacks %q:\n%s", want, out)
		}
	}
	start(t, dir, "serve", "-c", site)
	infrad := fmt.Sprintf("127.0.0.1:%d", dnsPort)
	testenv.WaitFor(t, "infrad serving lab.test", func() bool { _, err := axfr(infrad, "lab.test.", ""); return err == nil })

	// What BIND serves that infrad does not, by design: its SOA and apex NS (infrad's
	// are its own), and what the import named as not translated (the delegation of
	// dev.lab.test and the CAA record).
	skipBIND := func(rr dns.RR) bool {
		h := rr.Header()
		return h.Rrtype == dns.TypeSOA || h.Rrtype == dns.TypeCAA || h.Rrtype == dns.TypeNS
	}
	// What infrad serves that BIND does not: its SOA and NS, and the names it gives
	// itself at dns.advertise (its name server's, its CA's, its NTP server's, its own).
	own := []string{"ns.lab.test.", "ca.lab.test.", "ntp.lab.test.", "infrad.lab.test."}
	skipInfrad := func(rr dns.RR) bool {
		h := rr.Header()
		return h.Rrtype == dns.TypeSOA || h.Rrtype == dns.TypeNS || slices.Contains(own, h.Name)
	}
	for _, zone := range []string{"lab.test.", "0.77.10.in-addr.arpa."} {
		want, err := axfr(bind, zone, tsig)
		if err != nil {
			t.Fatal(err)
		}
		got, err := axfr(infrad, zone, "")
		if err != nil {
			t.Fatal(err)
		}
		w, g := sortedRRs(want, skipBIND), sortedRRs(got, skipInfrad)
		if !slices.Equal(g, w) {
			t.Errorf("%s: BIND transfers\n%s\ninfrad transfers\n%s", zone, strings.Join(w, "\n"), strings.Join(g, "\n"))
		}
	}
}

// axfr transfers zone from server, signed with tsig ("name:alg:secret") when given.
func axfr(server, zone, tsig string) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetAxfr(zone)
	tr := &dns.Transfer{DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second}
	if tsig != "" {
		f := strings.SplitN(tsig, ":", 3)
		tr.TsigSecret = map[string]string{dns.Fqdn(f[0]): f[2]}
		m.SetTsig(dns.Fqdn(f[0]), dns.Fqdn(f[1]), 300, time.Now().Unix())
	}
	env, err := tr.In(m, server)
	if err != nil {
		return nil, err
	}
	var rrs []dns.RR
	for e := range env {
		if e.Error != nil {
			return nil, e.Error
		}
		rrs = append(rrs, e.RR...)
	}
	if len(rrs) == 0 {
		return nil, fmt.Errorf("no records")
	}
	return rrs, nil
}

// sortedRRs is rrs in text, sorted, without those skip says.
func sortedRRs(rrs []dns.RR, skip func(dns.RR) bool) []string {
	var out []string
	for _, rr := range rrs {
		if !skip(rr) {
			out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestImportPlansBeforeItChanges: an import that conflicts with the site changes
// nothing, through the API or into a site file, and says what conflicts at the source's
// line; one that does not is applied whole, attributed to the import.
func TestImportPlansBeforeItChanges(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	site := siteFile(t, dir, "lab.test", port)
	start(t, dir, "serve", "-c", site)
	waitReady(t, base)
	token := readToken(t, filepath.Join(dir, "data"))
	conf := filepath.Join(dir, "dnsmasq.conf")
	os.WriteFile(conf, []byte("domain=lab.test\nhost-record=nas.lab.test,10.0.40.20\ndhcp-host=52:54:00:00:40:99,10.0.40.10,tv\nlog-queries\n"), 0o644)

	// Through the API: tv would take cp01's address.
	out, code := runImport(t, "", "dnsmasq", conf, "--api="+base, "--token", token)
	for _, want := range []string{"+ host nas 10.0.40.20  (" + conf + ":2)", "? " + conf + ":4: log-queries: left out",
		`! hosts[1].ip (` + conf + `:3): 10.0.40.10 is already the address of host "cp01"`, "nothing is changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("the import's plan lacks %q:\n%s", want, out)
		}
	}
	if code != exitFail {
		t.Errorf("a conflicting import: exit %d, want %d", code, exitFail)
	}
	if got := hostOwners(t, base, token); len(got) != 1 {
		t.Errorf("a refused import changed the hosts: %v", got)
	}

	// Into the site file: the same conflict, and the file stays as it was.
	before, _ := os.ReadFile(site)
	if out, code := runImport(t, "", "dnsmasq", conf, "--to", site); code != exitFail || !strings.Contains(out, `! hosts[2].ip (`+conf+`:3)`) { // (the site file's key path)
		t.Errorf("into the site file: exit %d\n%s", code, out)
	}
	// A malformed source is named at its line, and nothing is written either.
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("domain=lab.test\ndhcp-range=10.0.40.150,10.0.40.x\n"), 0o644)
	if out, code := runImport(t, "", "dnsmasq", bad, "--to", site); code != exitFail || !strings.Contains(out, bad+":2: dhcp-range=") {
		t.Errorf("a malformed source: exit %d\n%s", code, out)
	}
	if after, _ := os.ReadFile(site); !bytes.Equal(after, before) {
		t.Errorf("a refused import changed the site file:\n%s", after)
	}

	// Without the conflict: applied whole, in one change by "import dnsmasq".
	os.WriteFile(conf, []byte("domain=lab.test\nhost-record=nas.lab.test,10.0.40.20\ndhcp-host=52:54:00:00:40:99,10.0.40.30,tv\n"), 0o644)
	if out, code := runImport(t, "", "dnsmasq", conf, "--api="+base, "--token", token); code != exitOK || !strings.Contains(out, "2 hosts") {
		t.Fatalf("the import: exit %d\n%s", code, out)
	}
	if got := hostOwners(t, base, token); len(got) != 3 {
		t.Errorf("hosts after the import: %v", got)
	}
	var log struct {
		Changes []struct {
			Source  string
			Command string
			Changes []struct{ Kind, Key string }
		}
	}
	getJSON(t, base+"/api/v1/changes?limit=1", token, &log)
	if len(log.Changes) != 1 || log.Changes[0].Source != "import dnsmasq (token api-token)" || len(log.Changes[0].Changes) != 2 {
		t.Errorf("the change log's newest entry: %+v, want the import's two hosts by \"import dnsmasq (token api-token)\"", log.Changes)
	}
}

// TestImportFromKea moves an ISC Kea site (its kea-dhcp4.conf and its memfile lease
// file) into a running infrad in one command: a pool client Kea leased an address to
// keeps it (INIT-REBOOT), and the reserved one gets its address.
func TestImportFromKea(t *testing.T) {
	testenv.NeedRoot(t, "ip", "kea-dhcp4", "dhclient", "curl")
	l := newLab(t)
	dir := t.TempDir()
	copyTestdata(t, dir, "kea/kea-dhcp4.conf")
	conf, leases := filepath.Join(dir, "kea-dhcp4.conf"), filepath.Join(dir, "kea-leases4.csv")
	// Kea's sockets, logs and leases in the test's directory, not the machine's.
	raw, _ := os.ReadFile(conf)
	raw = bytes.ReplaceAll(raw, []byte(`"/run/kea/kea4-ctrl-socket"`), fmt.Appendf(nil, "%q", filepath.Join(dir, "ctrl")))
	raw = bytes.ReplaceAll(raw, []byte(`"/var/log/kea/kea-dhcp4.log"`), fmt.Appendf(nil, "%q", filepath.Join(dir, "kea.log")))
	raw = bytes.ReplaceAll(raw, []byte(`"type": "memfile",`), fmt.Appendf(nil, `"type": "memfile", "persist": true, "name": %q,`, leases))
	os.WriteFile(conf, raw, 0o644)
	kea := exec.Command("ip", "netns", "exec", l.srv, "kea-dhcp4", "-c", conf)
	kea.Env = append(os.Environ(), "KEA_PIDFILE_DIR="+dir, "KEA_LOCKFILE_DIR="+dir)
	keaOut := testenv.Start(t, kea)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kea-dhcp4:\n%s", keaOut)
		}
	})

	// Before: Kea leases the laptop an address from its pool, and cp01 its own.
	const laptop = "52:54:00:77:01:05"
	l.setMAC(t, laptop)
	c := l.dhclient(t, filepath.Join(dir, laptop), "laptop", "-d", "-1")
	testenv.WaitFor(t, "laptop bound by Kea, its lease written down", func() bool {
		lf, _ := os.ReadFile(filepath.Join(dir, laptop, "leases"))
		return c.got("BOUND") != nil && bytes.Contains(lf, []byte("fixed-address"))
	})
	before := c.got("BOUND")["new_ip_address"]
	c.stop()
	if cp01 := l.reserved(t, filepath.Join(dir, "cp01-before"), []string{"52:54:00:77:00:10"})["52:54:00:77:00:10"]; cp01 != "10.77.0.10" {
		t.Fatalf("Kea gave cp01 %s, want its reservation", cp01)
	}
	kea.Process.Signal(syscall.SIGTERM)
	kea.Wait()

	// The move: infrad with the lab's services and no subnet; one command.
	os.WriteFile(filepath.Join(dir, "site.yaml"), fmt.Appendf(nil, "domain: lab.test\ndata_dir: %s\n%sdhcp: {interfaces: [br0]}\n", filepath.Join(dir, "data"), labServices), 0o644)
	l.serveIn(t, dir)
	out, code := runImport(t, l.srv, "kea", conf, leases, "--api", "--data", filepath.Join(dir, "data"))
	if code != 0 || !strings.Contains(out, "imported through http://127.0.0.1:8080: 2 subnets, 2 hosts, 0 records, 1 leases") {
		t.Fatalf("infrad import kea --api: exit %d\n%s", code, out)
	}

	// Kea's lease is infrad's now, before its client comes back.
	if ls := l.leases(t, dir); !slices.ContainsFunc(ls, func(x lease) bool { return x.IP == before && x.MAC == laptop && x.Hostname == "laptop" }) {
		t.Errorf("the leases after the move: %+v, want Kea's lease of %s to the laptop", ls, before)
	}

	// After: the laptop comes back with INIT-REBOOT and keeps its address.
	l.setMAC(t, laptop)
	for _, reason := range []string{"reasons", "PREINIT", "BOUND"} { // (its lease file stays)
		os.Remove(filepath.Join(dir, laptop, reason))
	}
	c = l.dhclient(t, filepath.Join(dir, laptop), "laptop", "-d", "-1")
	testenv.WaitFor(t, "laptop back", func() bool { return c.got("REBOOT") != nil || c.got("BOUND") != nil })
	got := c.got("REBOOT")
	c.stop()
	if got == nil || got["new_ip_address"] != before {
		t.Errorf("Kea leased the laptop %s; after the move, INIT-REBOOT got %v (reasons: %s)", before, got, c.reasons())
	}
	if got := l.reserved(t, filepath.Join(dir, "cp01-after"), []string{"52:54:00:77:00:10"})["52:54:00:77:00:10"]; got != "10.77.0.10" {
		t.Errorf("cp01: got %s after the move, want its reservation 10.77.0.10", got)
	}
}

// TestImportFromNetBox reads NetBox 4.2's recorded API (every page, with its token)
// into a new site file that validate accepts.
func TestImportFromNetBox(t *testing.T) {
	dir := t.TempDir()
	api := filepath.Join(importdata, "netbox", "api")
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Token 0123456789abcdef" {
			http.Error(w, `{"detail": "Invalid token"}`, http.StatusForbidden)
			return
		}
		name := strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/"), "/")
		name = name[strings.LastIndex(name, "/")+1:]
		if r.URL.Query().Get("offset") != "" {
			name += "-2"
		}
		data, err := os.ReadFile(filepath.Join(api, name+".json"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(bytes.ReplaceAll(data, []byte("http://127.0.0.1:PORT"), []byte(srv.URL)))
	}))
	defer srv.Close()
	site := filepath.Join(dir, "site.yaml")
	if out, code := runImport(t, "", "netbox", srv.URL, "--netbox-token", "wrong", "--domain", "lab.test", "--to", site); code == 0 || !strings.Contains(out, "403") {
		t.Errorf("a wrong token: exit %d\n%s", code, out)
	}
	out, code := runImport(t, "", "netbox", srv.URL+"/", "--netbox-token", "0123456789abcdef", "--domain", "lab.test", "--to", site)
	if code != 0 {
		t.Fatalf("infrad import netbox: exit %d\n%s", code, out)
	}
	for _, want := range []string{"+ host cp01 10.77.0.10 fd00:77::10 52:54:00:77:00:10", "+ host worker01 10.77.0.21 52:54:00:77:00:21", "+ record api A 10.77.0.5"} {
		if !strings.Contains(out, want) {
			t.Errorf("the plan lacks %q:\n%s", want, out)
		}
	}
	if out, err := exec.Command(binary, "validate", "-c", site).CombinedOutput(); err != nil {
		t.Errorf("infrad validate: %v\n%s", err, out)
	}
}
