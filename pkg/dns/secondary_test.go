package dns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/site"
)

// named runs BIND as a secondary of the server at primary (host:port) for zone, on
// 127.0.0.1:port, until the test ends.
func named(t *testing.T, port int, zone, primary string) {
	t.Helper()
	dir := t.TempDir()
	host, pport, _ := strings.Cut(primary, ":")
	conf := namedOptions(dir, port) + fmt.Sprintf(`zone %q {
	type secondary;
	primaries port %s { %s; };
	file "secondary.zone";
};
`, zone, pport, host)
	runNamed(t, dir, conf)
}

// namedOptions is BIND's options for a test: its files in dir, authoritative only, on
// 127.0.0.1:port, transferring to loopback.
func namedOptions(dir string, port int) string {
	return fmt.Sprintf(`options {
	directory %q;
	pid-file none;
	listen-on port %d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	allow-transfer { 127.0.0.1; };
};
`, dir, port)
}

// runNamed runs BIND with conf, written into dir, until the test ends; its output is
// logged when the test fails.
func runNamed(t *testing.T, dir, conf string) {
	t.Helper()
	path := filepath.Join(dir, "named.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out := testenv.Start(t, exec.Command("named", "-g", "-c", path))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("named:\n%s", out)
		}
	})
}

// knotd runs Knot DNS as a secondary of the server at primary for zone, on
// 127.0.0.1:port, until the test ends.
func knotd(t *testing.T, port int, zone, primary string) {
	t.Helper()
	dir := t.TempDir()
	host, pport, _ := strings.Cut(primary, ":")
	conf := fmt.Sprintf(`server:
    listen: 127.0.0.1@%d
    rundir: %q
database:
    storage: %q
remote:
  - id: primary
    address: %s@%s
acl:
  - id: notify
    address: %s
    action: [notify, transfer]
template:
  - id: default
    storage: %q
zone:
  - domain: %s
    master: primary
    acl: notify
`, port, dir, dir, host, pport, host, dir, zone)
	path := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out := testenv.Start(t, exec.Command("knotd", "-c", path))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("knotd:\n%s", out)
		}
	})
}

// secondarySite is testSite with three secondaries, at %[2]d, %[3]d and %[4]d, and
// a TTL of %[5]d.
const secondarySite = `domain: k8s.example.com
dns:
  listen: ["127.0.0.1:%[1]d"]
  ttl: %[5]d
  secondaries: ["127.0.0.1:%[2]d", "127.0.0.1:%[3]d", "127.0.0.1:%[4]d"]
  records:
    - {name: api, type: A, value: 10.0.40.100}
    - {name: "*.apps", type: A, value: 10.0.40.101}
    - {name: registry, type: CNAME, value: cp01}
    - {name: "@", type: TXT, value: "v=spf1 -all", ttl: 3600}
subnets:
  - {name: vm, cidr: 10.0.40.0/24, ranges: [{kind: dhcp, start: 10.0.40.150, end: 10.0.40.199}]}
hosts:
  - {name: cp01, ip: 10.0.40.10}
  - {name: cp02, ip: 10.0.40.11}
`

// zoneText is zone's transfer from the server at port, one RR a line in a canonical
// form, sorted (the closing SOA dropped): what two servers must agree on.
func zoneText(t *testing.T, port int, zone string) ([]string, uint32) {
	t.Helper()
	tr := &dns.Transfer{}
	m := new(dns.Msg).SetAxfr(zone)
	ch, err := tr.In(m, fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, 0
	}
	var lines []string
	var serial uint32
	for env := range ch {
		if env.Error != nil {
			return nil, 0
		}
		for _, rr := range env.RR {
			if soa, ok := rr.(*dns.SOA); ok {
				if serial != 0 {
					continue
				}
				serial = soa.Serial
			}
			line := strings.ToLower(rr.Header().Name) + " " + fmt.Sprint(rr.Header().Ttl) + " " + dns.TypeToString[rr.Header().Rrtype] + " " + strings.ToLower(rdata(rr))
			lines = append(lines, line)
		}
	}
	slices.Sort(lines)
	return lines, serial
}

// secondariesOf makes NSD, BIND and Knot secondaries of zone from primary, on their
// ports, and returns the ports by name.
func secondariesOf(t *testing.T, zone, primary string, nsdPort, namedPort, knotPort int) map[string]int {
	t.Helper()
	nsd(t, nsdPort, zone, primary)
	named(t, namedPort, zone, primary)
	knotd(t, knotPort, zone, primary)
	return map[string]int{"NSD": nsdPort, "BIND": namedPort, "Knot": knotPort}
}

// TestSecondariesServeWhatInfradServes: BIND, NSD and Knot as secondaries follow
// infrad through a change of data and a reload that changes only the TTL: after each,
// every secondary serves exactly infrad's zone, at infrad's serial (a reload that
// changed the answers but not the serial left them serving the old TTLs for good).
func TestSecondariesServeWhatInfradServes(t *testing.T) {
	testenv.Need(t, "named", "nsd", "knotd")
	port, nsdPort, namedPort, knotPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	siteAt := func(ttl int) []byte { return fmt.Appendf(nil, secondarySite, port, nsdPort, namedPort, knotPort, ttl) }
	s := startSite(t, func(int) string { return string(siteAt(120)) })
	const zone = "k8s.example.com."
	primary := fmt.Sprintf("127.0.0.1:%d", port)
	secondaries := secondariesOf(t, zone, primary, nsdPort, namedPort, knotPort)
	agree := func(step string) {
		t.Helper()
		want, serial := zoneText(t, port, zone)
		for name, p := range secondaries {
			testenv.WaitFor(t, name+" to serve infrad's zone "+step, func() bool {
				got, at := zoneText(t, p, zone)
				return at == serial && slices.Equal(got, want)
			})
		}
	}
	agree("at start")

	if _, err := s.ipam.CreateRecord(t.Context(), site.RecordSpec{Name: "w01", Type: "A", Value: "10.0.40.21"}); err != nil {
		t.Fatal(err)
	}
	agree("after a new record")

	_, before := zoneText(t, port, zone)
	site, err := config.Parse("site.yaml", siteAt(60))
	if err != nil {
		t.Fatal(err)
	}
	sitetest.Reload(t, s.ipam, site)
	if err := s.svc.Reload(site); err != nil {
		t.Fatal(err)
	}
	lines, after := zoneText(t, port, zone)
	if after == before {
		t.Fatalf("a reload that changed the TTL left the serial at %d", after)
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "cp01.k8s.example.com. 60 A ") }) {
		t.Fatalf("infrad does not serve the new TTL:\n%s", strings.Join(lines, "\n"))
	}
	agree("after a reload of the TTL")
}

// bindPrimary runs BIND as the primary of zones, each loaded from the text given,
// taking updates signed with the external-dns key, on 127.0.0.1:port.
func bindPrimary(t *testing.T, port int, zones map[string]string) {
	t.Helper()
	dir := t.TempDir()
	conf := namedOptions(dir, port) + fmt.Sprintf("key \"external-dns\" { algorithm hmac-sha256; secret %q; };\n", tsigSecret)
	i := 0
	for zone, text := range zones {
		file := fmt.Sprintf("zone%d", i)
		i++
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		conf += fmt.Sprintf("zone %q { type primary; file %q; allow-update { key external-dns; }; };\n", zone, file)
	}
	runNamed(t, dir, conf)
}

// TestUpdatesAnsweredAsBINDAnswers: BIND, primary of infrad's own zones (loaded from
// infrad's transfers), and infrad take the same RFC 2136 updates, one after another:
// each gets the same response code from both (prerequisites on hosts, the glue, the
// apex NS and SOA, an empty non-terminal, a wildcard, a CNAME; a CNAME replacing a
// CNAME; data beside a CNAME ignored, §3.4.2.2), and the zones end alike. Derived
// names, which infrad refuses to change, are TestUpdateRefusals'.
func TestUpdatesAnsweredAsBINDAnswers(t *testing.T) {
	testenv.Need(t, "named", "nsupdate")
	s := start(t, `  transfer_from: [127.0.0.0/8]`)
	zones := []string{"k8s.example.com.", "40.0.10.in-addr.arpa."}
	texts := map[string]string{}
	for _, z := range zones {
		texts[z] = s.dig(t, z, "AXFR", "+nocmd", "+nostats", "+nocomments")
	}
	bind := &server{port: testenv.FreePort(t)}
	bindPrimary(t, bind.port, texts)
	testenv.WaitFor(t, "BIND to load the zones", func() bool {
		out, err := bind.query("k8s.example.com", "SOA", "+short")
		return err == nil && strings.TrimSpace(out) != ""
	})
	const rev = "zone 40.0.10.in-addr.arpa\n"
	steps := []string{
		"prereq yxdomain cp01.k8s.example.com",
		"prereq nxdomain cp01.k8s.example.com",
		"prereq yxrrset cp01.k8s.example.com A",
		"prereq yxrrset cp01.k8s.example.com AAAA",
		"prereq nxrrset cp01.k8s.example.com A",
		"prereq yxrrset cp01.k8s.example.com A 10.0.40.10",
		"prereq yxrrset cp01.k8s.example.com A 10.0.40.99",
		"prereq yxdomain ns.k8s.example.com",
		"prereq nxdomain ns.k8s.example.com",
		"prereq yxrrset ns.k8s.example.com A",
		"prereq yxrrset ns.k8s.example.com A 127.0.0.1",
		"prereq yxrrset k8s.example.com NS",
		"prereq yxrrset k8s.example.com NS ns.k8s.example.com.",
		"prereq yxrrset k8s.example.com NS other.example.",
		"prereq nxrrset k8s.example.com SOA",
		"prereq yxrrset k8s.example.com MX 10 mail.k8s.example.com.",
		"prereq yxdomain deep.sub.k8s.example.com",
		"prereq nxdomain deep.sub.k8s.example.com",
		"prereq yxdomain x.deep.sub.k8s.example.com",
		"prereq yxdomain any.apps.k8s.example.com",
		"prereq yxrrset *.apps.k8s.example.com A",
		"prereq yxrrset registry.k8s.example.com CNAME",
		"prereq yxrrset registry.k8s.example.com A",
		"prereq nxdomain gone.k8s.example.com",
		rev + "prereq yxrrset 10.40.0.10.in-addr.arpa PTR cp01.k8s.example.com.",
		rev + "prereq yxrrset 10.40.0.10.in-addr.arpa PTR cp02.k8s.example.com.",
		rev + "prereq nxdomain 99.40.0.10.in-addr.arpa",
		"update add alias.k8s.example.com 60 CNAME cp01.k8s.example.com.",
		"update add alias.k8s.example.com 60 CNAME cp02.k8s.example.com.",
		"update add alias.k8s.example.com 60 TXT \"beside a CNAME\"",
		"update add words.k8s.example.com 60 TXT \"first\"",
		"update add words.k8s.example.com 60 CNAME cp01.k8s.example.com.",
		"prereq yxrrset alias.k8s.example.com CNAME cp02.k8s.example.com.\nupdate delete alias.k8s.example.com CNAME",
		"prereq nxdomain alias.k8s.example.com\nupdate add alias.k8s.example.com 60 A 10.0.40.77",
	}
	rcode := func(srv *server, script string) string {
		out, _ := srv.nsupdate(t, goodKey, strings.Split(script, "\n")...)
		if _, after, ok := strings.Cut(out, "update failed: "); ok {
			return strings.TrimSpace(after)
		}
		return "NOERROR"
	}
	failed := map[string]int{} // BIND's answers, counted
	for i, step := range steps {
		script := step
		if strings.Contains(step, "prereq") && !strings.Contains(step, "update") {
			mark := fmt.Sprintf("mark%d.k8s.example.com", i) // a name of the message's one zone
			if strings.HasPrefix(step, "zone ") {
				mark = fmt.Sprintf("%d.40.0.10.in-addr.arpa", 200+i)
			}
			script += fmt.Sprintf("\nupdate add %s 60 TXT \"%d\"", mark, i)
		}
		got, want := rcode(s, script), rcode(bind, script)
		if got != want {
			t.Errorf("step %d %q: infrad answered %s, BIND %s", i, step, got, want)
		}
		failed[want]++
	}
	if failed["NOERROR"] < 10 || len(failed) < 4 {
		t.Errorf("the steps' answers %v: too few of each kind to compare", failed)
	}
	if testing.Verbose() {
		t.Logf("answers: %v", failed)
	}
	for _, z := range zones {
		ours, _ := zoneText(t, s.port, z)
		theirs, _ := zoneText(t, bind.port, z)
		noSOA := func(l string) bool { return strings.Contains(l, " SOA ") }
		ours, theirs = slices.DeleteFunc(ours, noSOA), slices.DeleteFunc(theirs, noSOA)
		if !slices.Equal(ours, theirs) {
			t.Errorf("after the updates, %s differs:\ninfrad:\n%s\nBIND:\n%s", z, strings.Join(ours, "\n"), strings.Join(theirs, "\n"))
		}
	}
}

// TestSignedSecondariesFollowSigning: with DNSSEC on, BIND, NSD and Knot as
// secondaries serve exactly infrad's signed zone, signatures included, at its serial:
// after a restart (which signs the same serial alike), after the signatures have aged
// half their life, and after a ZSK's pre-publication. Each of the last two raises
// the serial; before, none did, and a quiet zone's secondaries served signatures
// until they expired.
func TestSignedSecondariesFollowSigning(t *testing.T) {
	testenv.Need(t, "named", "nsd", "knotd")
	port, nsdPort, namedPort, knotPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	site := strings.Replace(fmt.Sprintf(secondarySite, port, nsdPort, namedPort, knotPort, 120), "  ttl: 120\n", "  ttl: 120\n  dnssec: true\n", 1)
	m, cfg := sitetest.IPAM(t, []byte(site))
	clock := newClock(time.Now())
	serve := func() *Service {
		svc := New(Options{Site: cfg, IPAM: m, Registry: prometheus.NewRegistry(), Coalesce: time.Millisecond, Now: clock.now})
		if err := svc.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		return svc
	}
	svc := serve()
	t.Cleanup(func() { svc.Stop(context.Background()) })
	const zone = "k8s.example.com."
	primary := fmt.Sprintf("127.0.0.1:%d", port)
	secondaries := secondariesOf(t, zone, primary, nsdPort, namedPort, knotPort)
	agree := func(step string) ([]string, uint32) {
		t.Helper()
		want, serial := zoneText(t, port, zone)
		if !slices.ContainsFunc(want, func(l string) bool { return strings.Contains(l, " RRSIG ") }) {
			t.Fatalf("%s: infrad's zone is not signed:\n%s", step, strings.Join(want, "\n"))
		}
		for name, p := range secondaries {
			testenv.WaitFor(t, name+" to serve infrad's signed zone "+step, func() bool {
				got, at := zoneText(t, p, zone)
				return at == serial && slices.Equal(got, want)
			})
		}
		return want, serial
	}
	first, serial := agree("at start")

	svc.Stop(context.Background())
	svc = serve()
	again, at := zoneText(t, port, zone)
	if at != serial || !slices.Equal(again, first) {
		t.Errorf("after a restart infrad serves serial %d (was %d), and the same zone: %v", at, serial, slices.Equal(again, first))
	}
	agree("after a restart")

	for _, step := range []struct {
		name  string
		by    time.Duration
		check func(lines []string) bool
	}{
		{"half the signatures' life later", sigRefresh + time.Hour, func([]string) bool { return true }},
		{"after the next ZSK's pre-publication", zskLifetime - prepublish - sigRefresh, func(lines []string) bool {
			return len(slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return !strings.HasPrefix(l, zone+" 120 DNSKEY ") })) == 3
		}},
	} {
		clock.add(step.by)
		svc.refreshKeys(t.Context())
		lines, now := zoneText(t, port, zone)
		if now == serial {
			t.Fatalf("%s: the serial stayed %d", step.name, now)
		}
		if !step.check(lines) {
			t.Errorf("%s: infrad's zone:\n%s", step.name, strings.Join(lines, "\n"))
		}
		_, serial = agree(step.name)
	}
}
