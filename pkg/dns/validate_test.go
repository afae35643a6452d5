package dns

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/site"
)

// The validators here are real ones: Unbound as a validating resolver, delv, and
// dnssec-verify on a transferred zone. Each trusts the DS records the service
// reports (what `infrad export ds` prints), as a node's resolver would.

// anchors are the DS records of s's zones.
func anchors(t *testing.T, s *server) []string {
	t.Helper()
	ds := s.svc.DNSSEC().DS
	if len(ds) == 0 {
		t.Fatal("no DS records: the zones are not signed")
	}
	return ds
}

var siteZones3 = []string{"k8s.example.com.", "example.org.", "40.0.10.in-addr.arpa."}

// TestUnboundValidates: Unbound, trusting the exported DS records, marks the site's
// answers authenticated (ad), its denials too, and refuses an answer changed on the
// way (SERVFAIL).
func TestUnboundValidates(t *testing.T) {
	s := signedServer(t, "")
	port := testenv.Unbound(t, "127.0.0.1@"+fmt.Sprint(s.port), siteZones3, anchors(t, s), time.Time{})
	for _, q := range []struct {
		name  string
		qtype uint16
		rcode int
	}{
		{"cp01.k8s.example.com.", dns.TypeA, dns.RcodeSuccess},
		{"anything.apps.k8s.example.com.", dns.TypeA, dns.RcodeSuccess},
		{"www.example.org.", dns.TypeA, dns.RcodeSuccess}, // a CNAME across zones
		{"10.40.0.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess},
		{"nope.k8s.example.com.", dns.TypeA, dns.RcodeSuccess}, // compact denial: NOERROR, no answer
		{"cp01.k8s.example.com.", dns.TypeAAAA, dns.RcodeSuccess},
	} {
		r := testenv.Resolve(t, port, q.name, q.qtype)
		if !r.AuthenticatedData || r.Rcode != q.rcode {
			t.Errorf("%s %s: want %s with ad, got %s ad=%v:\n%s", q.name, dns.TypeToString[q.qtype], dns.RcodeToString[q.rcode], dns.RcodeToString[r.Rcode], r.AuthenticatedData, r)
		}
	}

	// A proxy that changes cp01's address in every answer: Unbound refuses it.
	proxy := tamper(t, s.addr, "cp01.k8s.example.com.", net.IPv4(10, 6, 6, 6))
	port = testenv.Unbound(t, proxy, siteZones3, anchors(t, s), time.Time{})
	if r := testenv.Resolve(t, port, "cp01.k8s.example.com.", dns.TypeA); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("a tampered answer: want SERVFAIL, got:\n%s", r)
	}
	if r := testenv.Resolve(t, port, "cp02.k8s.example.com.", dns.TypeA); !r.AuthenticatedData {
		t.Errorf("an answer the proxy left alone: want ad:\n%s", r)
	}
}

// tamper runs a UDP proxy to upstream that sets name's A records to ip, leaving the
// signatures as they were; it returns its "host@port".
func tamper(t *testing.T, upstream, name string, ip net.IP) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil {
				continue
			}
			go func() {
				r, err := dns.Exchange(q, upstream)
				if err != nil {
					return
				}
				for _, rr := range r.Answer {
					if a, ok := rr.(*dns.A); ok && a.Hdr.Name == name {
						a.A = ip
					}
				}
				if b, err := r.Pack(); err == nil {
					pc.WriteTo(b, from)
				}
			}()
		}
	}()
	return "127.0.0.1@" + fmt.Sprint(pc.LocalAddr().(*net.UDPAddr).Port)
}

// TestDelvValidates: BIND's delv, trusting the DS records, fully validates an
// answer and a denial.
func TestDelvValidates(t *testing.T) {
	testenv.Need(t, "delv")
	s := signedServer(t, "")
	var conf strings.Builder
	conf.WriteString("trust-anchors {\n")
	for _, a := range anchors(t, s) {
		f := strings.Fields(a) // name ttl IN DS tag alg digesttype digest
		if f[0] == "k8s.example.com." {
			fmt.Fprintf(&conf, "  %q initial-ds %s %s %s %q;\n", f[0], f[4], f[5], f[6], f[7])
		}
	}
	conf.WriteString("};\n")
	path := filepath.Join(t.TempDir(), "anchors.conf")
	os.WriteFile(path, []byte(conf.String()), 0o644)
	for _, q := range []string{"cp01.k8s.example.com", "nope.k8s.example.com"} {
		out, err := exec.Command("delv", "@127.0.0.1", "-p", fmt.Sprint(s.port), "-a", path, "+root=k8s.example.com", q, "A").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "fully validated") {
			t.Errorf("delv %s: %v\n%s", q, err, out)
		}
	}
}

// delegatingServer serves a signed site whose extra zone, example.com, is the parent
// of its domain: example.com's transfer delegates k8s.example.com, with a DS set and
// glue for the name server below the cut.
func delegatingServer(t *testing.T) *server {
	t.Helper()
	port := testenv.FreePort(t)
	m, site := sitetest.IPAM(t, []byte(fmt.Sprintf(`domain: k8s.example.com
dns:
  listen: ["127.0.0.1:%d"]
  advertise: 10.0.40.2
  zones: [example.com]
  dnssec: true
  transfer_from: [127.0.0.0/8]
  records:
    - {name: "*.apps", type: A, value: 10.0.40.101}
    - {name: x.deep.sub, type: TXT, value: "under an empty non-terminal"}
    - {name: www.example.com., type: A, value: 10.0.40.100}
subnets:
  - {name: vm, cidr: 10.0.40.0/24}
hosts:
  - {name: cp01, ip: 10.0.40.10}
  - {name: cp02, ip: 10.0.40.11}
`, port)))
	svc := New(Options{Site: site, IPAM: m, Registry: prometheus.NewRegistry()})
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop(t.Context()) })
	return &server{svc: svc, ipam: m, addr: fmt.Sprintf("127.0.0.1:%d", port), port: port}
}

// TestDNSSECVerifyAcceptsTheTransfer: BIND's dnssec-verify and Knot's kzonecheck
// (its DNSSEC checks on) accept the zones dig transferred, the domain's and a parent
// zone's whose delegation to it carries a DS and glue.
func TestDNSSECVerifyAcceptsTheTransfer(t *testing.T) {
	testenv.Need(t, "dig", "dnssec-verify", "kzonecheck")
	s := delegatingServer(t)
	for _, zone := range []string{"k8s.example.com", "example.com", "40.0.10.in-addr.arpa"} {
		out, err := exec.Command("dig", "@127.0.0.1", "-p", fmt.Sprint(s.port), "+onesoa", "+nocmd", "+nostats", zone, "AXFR").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "RRSIG") {
			t.Fatalf("dig axfr %s: %v\n%s", zone, err, out)
		}
		path := filepath.Join(t.TempDir(), zone+".zone")
		os.WriteFile(path, out, 0o644)
		if v, err := exec.Command("dnssec-verify", "-o", zone, path).CombinedOutput(); err != nil || !strings.Contains(string(v), "Zone fully signed") {
			t.Errorf("dnssec-verify %s: %v\n%s\nzone:\n%s", zone, err, v, out)
		}
		if k, err := exec.Command("kzonecheck", "-o", zone, "-d", "on", path).CombinedOutput(); err != nil {
			t.Errorf("kzonecheck -d on %s: %v\n%s\nzone:\n%s", zone, err, k, out)
		}
	}
}

// TestChainOfTrustDownToTheDomain: Unbound trusting only example.com follows its DS
// set for k8s.example.com, which infrad answers from the parent, to the domain.
func TestChainOfTrustDownToTheDomain(t *testing.T) {
	s := delegatingServer(t)
	var parentDS []string
	for _, ds := range anchors(t, s) {
		if strings.HasPrefix(ds, "example.com.") {
			parentDS = append(parentDS, ds)
		}
	}
	port := testenv.Unbound(t, "127.0.0.1@"+fmt.Sprint(s.port), []string{"example.com."}, parentDS, time.Time{})
	for _, name := range []string{"www.example.com.", "cp01.k8s.example.com.", "x.apps.k8s.example.com."} {
		if r := testenv.Resolve(t, port, name, dns.TypeA); !r.AuthenticatedData || len(r.Answer) == 0 {
			t.Errorf("%s, trusting example.com alone: want an answer with ad:\n%s", name, r)
		}
	}
}

// TestSignedSecondary: NSD, a secondary, transfers the signed zone and serves it;
// Unbound validates NSD's answers, for a host made after the first transfer too.
func TestSignedSecondary(t *testing.T) {
	testenv.Need(t, "nsd")
	nsdPort := testenv.FreePort(t)
	s := signedServer(t, fmt.Sprintf(`  secondaries: ["127.0.0.1:%d"]`, nsdPort))
	nsd(t, nsdPort, "k8s.example.com", s.addr)
	secondary := &server{port: nsdPort}
	serves := func(name string) bool { // asked of NSD itself, so that Unbound caches no denial
		out, err := secondary.query(name, "+short")
		return err == nil && strings.TrimSpace(out) != ""
	}
	testenv.WaitFor(t, "the secondary to transfer the zone", func() bool { return serves("cp01.k8s.example.com") })
	port := testenv.Unbound(t, "127.0.0.1@"+fmt.Sprint(nsdPort), []string{"k8s.example.com."}, anchors(t, s), time.Time{})
	testenv.WaitFor(t, "Unbound to validate cp01 from the secondary", func() bool {
		r := testenv.Resolve(t, port, "cp01.k8s.example.com.", dns.TypeA)
		return r.AuthenticatedData && len(r.Answer) > 0
	})
	if _, err := s.ipam.CreateHost(t.Context(), site.HostSpec{Name: "w03", IP: "10.0.40.23"}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the secondary to follow the change", func() bool { return serves("w03.k8s.example.com") })
	testenv.WaitFor(t, "Unbound to validate w03, made after the first transfer, from the secondary", func() bool {
		r := testenv.Resolve(t, port, "w03.k8s.example.com.", dns.TypeA)
		return r.AuthenticatedData && len(r.Answer) > 0
	})
}
