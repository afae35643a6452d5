package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/service"
	"github.com/infrad/infrad/pkg/site"
)

const tsigSecret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="

// testSite is the site the tests serve; %[1]d is the DNS port, %[2]s further dns keys.
const testSite = `domain: k8s.example.com
dns:
  listen: ["127.0.0.1:%[1]d"]
  zones: [example.org]
  ttl: 120
  tsig_keys:
    - {name: external-dns, algorithm: hmac-sha256, secret: "` + tsigSecret + `"}
    - {name: update-only, algorithm: hmac-sha512, secret: "` + tsigSecret + `", transfer: false}
  records:
    - {name: api, type: A, value: 10.0.40.100}
    - {name: "*.apps", type: A, value: 10.0.40.101}
    - {name: registry, type: CNAME, value: cp01}
    - {name: chain, type: CNAME, value: registry}
    - {name: _etcd-server-ssl._tcp, type: SRV, value: "0 10 2380 cp01"}
    - {name: "@", type: MX, value: "10 mail"}
    - {name: "@", type: TXT, value: "v=spf1 -all", ttl: 3600}
    - {name: www.example.org., type: CNAME, value: api.k8s.example.com.}
    - {name: x.deep.sub, type: TXT, value: "under an empty non-terminal"}
%[2]s
subnets:
  - name: vm
    cidr: 10.0.40.0/24
    gateway: 10.0.40.1
    ranges:
      - {kind: reserved, name: metallb, start: 10.0.40.100, end: 10.0.40.120}
      - {kind: dhcp, start: 10.0.40.150, end: 10.0.40.199}
  - {name: v6, cidr: "fd00:40::/64"}
hosts:
  - {name: cp01, ip: 10.0.40.10, mac: "52:54:00:00:40:10"}
  - {name: cp02, ip: 10.0.40.11}
  - {name: cp6, ip: "fd00:40::10"}
`

type server struct {
	svc  *Service
	reg  *prometheus.Registry // the service's metrics
	ipam *ipam.IPAM
	addr string // host:port of the DNS listener
	port int
	// A signed server's (signedServer): the clock it signs by, which the test moves,
	// and whether it trusts it.
	clock  *clock
	synced *atomic.Bool
}

// start serves testSite, with extra dns keys, from an in-process Service.
func start(t *testing.T, extra string) *server {
	t.Helper()
	return startSite(t, func(port int) string { return fmt.Sprintf(testSite, port, extra) })
}

// startSite serves the site that siteAt writes for a DNS port, from an in-process Service.
func startSite(t *testing.T, siteAt func(port int) string) *server {
	t.Helper()
	port := testenv.FreePort(t)
	m, site := sitetest.IPAM(t, []byte(siteAt(port)))
	reg := prometheus.NewRegistry()
	svc := New(Options{Site: site, IPAM: m, Registry: reg, Coalesce: time.Millisecond})
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop(context.Background()) })
	return &server{svc: svc, reg: reg, ipam: m, addr: fmt.Sprintf("127.0.0.1:%d", port), port: port}
}

// query runs dig against the server and returns its output. A packet that is no
// answer ("query response not set": another test's NTP or DNS client writing to the
// ephemeral port dig was given, once its server's port was freed) is asked again.
func (s *server) query(args ...string) (string, error) {
	for try := 0; ; try++ {
		out, err := exec.Command("dig", append([]string{"@127.0.0.1", "-p", fmt.Sprint(s.port), "+time=2", "+tries=1"}, args...)...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("dig %v: %v\n%s", args, err, out)
		}
		if !strings.Contains(string(out), ";; Warning: query response not set") || try == 2 {
			return string(out), nil
		}
	}
}

// dig is query, failing the test when dig fails.
func (s *server) dig(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.query(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// answers runs dig +short, failing the test when dig fails.
func (s *server) answers(t *testing.T, args ...string) []string {
	t.Helper()
	return short(s.dig(t, append(args, "+short")...))
}

func short(out string) []string {
	out = strings.TrimSpace(out)
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

func status(out string) string {
	_, after, ok := strings.Cut(out, "status: ")
	if !ok {
		return ""
	}
	st, _, _ := strings.Cut(after, ",")
	return st
}

func TestAuthoritativeAnswers(t *testing.T) {
	testenv.Need(t, "dig")
	s := start(t, "")
	tests := []struct {
		name string
		args []string
		want string // the answer, as dig +short prints it, one per line
	}{
		{"host A", []string{"cp01.k8s.example.com"}, "10.0.40.10"},
		{"host AAAA", []string{"cp6.k8s.example.com", "AAAA"}, "fd00:40::10"},
		{"host PTR", []string{"-x", "10.0.40.10"}, "cp01.k8s.example.com."},
		{"IPv6 PTR", []string{"-x", "fd00:40::10"}, "cp6.k8s.example.com."},
		{"record A", []string{"api.k8s.example.com"}, "10.0.40.100"},
		{"wildcard", []string{"grafana.apps.k8s.example.com"}, "10.0.40.101"},
		{"CNAME chased to the A", []string{"chain.k8s.example.com"}, "registry.k8s.example.com.\ncp01.k8s.example.com.\n10.0.40.10"},
		{"CNAME across our zones", []string{"www.example.org"}, "api.k8s.example.com.\n10.0.40.100"},
		{"SRV", []string{"_etcd-server-ssl._tcp.k8s.example.com", "SRV"}, "0 10 2380 cp01.k8s.example.com."},
		{"MX at the apex", []string{"k8s.example.com", "MX"}, "10 mail.k8s.example.com."},
		{"TXT at the apex", []string{"k8s.example.com", "TXT"}, `"v=spf1 -all"`},
		{"NS", []string{"k8s.example.com", "NS"}, "ns.k8s.example.com."},
		{"NS glue", []string{"ns.k8s.example.com"}, "127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(s.answers(t, tc.args...), "\n"); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("TTLs", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			ttl  string
		}{
			{[]string{"cp01.k8s.example.com"}, "120"},    // dns.ttl
			{[]string{"k8s.example.com", "TXT"}, "3600"}, // the record's own
		} {
			out := s.dig(t, append(tc.args, "+noall", "+answer")...)
			if f := strings.Fields(out); len(f) < 2 || f[1] != tc.ttl {
				t.Errorf("%v: got %q, want TTL %s", tc.args, out, tc.ttl)
			}
		}
	})
	t.Run("aa flag", func(t *testing.T) {
		if out := s.dig(t, "cp01.k8s.example.com"); !strings.Contains(out, "flags: qr aa") {
			t.Errorf("no aa flag in\n%s", out)
		}
	})
}

func TestNegativeAnswersCarryTheSOA(t *testing.T) {
	testenv.Need(t, "dig")
	s := start(t, "")
	tests := []struct {
		name, qname, qtype, status, zone string
	}{
		{"NXDOMAIN", "nope.k8s.example.com", "A", "NXDOMAIN", "k8s.example.com."},
		{"NODATA", "cp01.k8s.example.com", "MX", "NOERROR", "k8s.example.com."},
		{"empty non-terminal is NODATA", "deep.sub.k8s.example.com", "A", "NOERROR", "k8s.example.com."},
		{"no wildcard for an empty non-terminal", "sub.k8s.example.com", "TXT", "NOERROR", "k8s.example.com."},
		{"a wildcard's parent is an empty non-terminal", "apps.k8s.example.com", "A", "NOERROR", "k8s.example.com."},
		{"reverse NXDOMAIN", "99.40.0.10.in-addr.arpa", "PTR", "NXDOMAIN", "40.0.10.in-addr.arpa."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := s.dig(t, tc.qname, tc.qtype, "+noall", "+comments", "+answer", "+authority")
			if got := status(out); got != tc.status {
				t.Errorf("got status %s, want %s\n%s", got, tc.status, out)
			}
			if strings.Contains(out, ";; ANSWER SECTION:") {
				t.Errorf("a negative answer has an answer section:\n%s", out)
			}
			soa := regexpSOA(out, tc.zone)
			if soa == nil {
				t.Fatalf("no SOA of %s in the authority section:\n%s", tc.zone, out)
			}
			if soa.Hdr.Ttl > negTTL {
				t.Errorf("got SOA TTL %d, want at most the negative TTL %d", soa.Hdr.Ttl, negTTL)
			}
		})
	}
}

// regexpSOA finds the SOA of zone in dig output.
func regexpSOA(out, zone string) *dns.SOA {
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, zone) || !strings.Contains(line, "SOA") {
			continue
		}
		rr, err := dns.NewRR(line)
		if err == nil {
			if soa, ok := rr.(*dns.SOA); ok {
				return soa
			}
		}
	}
	return nil
}

func TestForwardingOnlyForAllowedClients(t *testing.T) {
	testenv.Need(t, "dig")
	upstream := testenv.StubDNS(t, ".", netip.MustParseAddr("192.0.2.1")).String()
	t.Run("allowed client", func(t *testing.T) {
		s := start(t, fmt.Sprintf("  forwarders: [%q]", upstream))
		if got := s.answers(t, "outside.example.net"); len(got) != 1 || got[0] != "192.0.2.1" {
			t.Errorf("got %v, want the upstream's answer", got)
		}
		if got := s.answers(t, "cp01.k8s.example.com"); len(got) != 1 || got[0] != "10.0.40.10" {
			t.Errorf("our own name: got %v", got)
		}
	})
	t.Run("outside client", func(t *testing.T) {
		s := start(t, fmt.Sprintf("  forwarders: [%q]\n  recursion_allow: [10.0.0.0/8]", upstream))
		if got := status(s.dig(t, "outside.example.net")); got != "REFUSED" {
			t.Errorf("recursive query from outside recursion_allow: got %s, want REFUSED", got)
		}
		if got := s.answers(t, "cp01.k8s.example.com"); len(got) != 1 || got[0] != "10.0.40.10" {
			t.Errorf("authoritative answers go to everyone: got %v", got)
		}
	})
	t.Run("no forwarders", func(t *testing.T) {
		s := start(t, "")
		if got := status(s.dig(t, "outside.example.net")); got != "REFUSED" {
			t.Errorf("got %s, want REFUSED", got)
		}
	})
}

func TestHostChangesReachDNS(t *testing.T) {
	testenv.Need(t, "dig")
	s := start(t, "")
	if _, err := s.ipam.CreateHost(context.Background(), site.HostSpec{Name: "w01", IP: "10.0.40.20"}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "w01 in A and PTR", func() bool {
		a, ptr := s.answers(t, "w01.k8s.example.com"), s.answers(t, "-x", "10.0.40.20")
		return len(a) == 1 && a[0] == "10.0.40.20" && len(ptr) == 1 && ptr[0] == "w01.k8s.example.com."
	})
	if err := s.ipam.DeleteHost(context.Background(), "w01"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "w01 gone from A and PTR", func() bool {
		return status(s.dig(t, "w01.k8s.example.com")) == "NXDOMAIN" && status(s.dig(t, "-x", "10.0.40.20")) == "NXDOMAIN"
	})
}

func TestSerialRises(t *testing.T) {
	testenv.Need(t, "dig")
	s := start(t, "")
	serial := func() uint32 {
		var n uint32
		fmt.Sscanf(strings.Fields(s.answers(t, "k8s.example.com", "SOA")[0])[2], "%d", &n)
		return n
	}
	before := serial()
	if _, err := s.ipam.CreateHost(context.Background(), site.HostSpec{Name: "w02", IP: "10.0.40.21"}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "a newer serial", func() bool { return serialNewer(serial(), before) })
}

func TestLeasesInDNSAndHostsWin(t *testing.T) {
	testenv.Need(t, "dig")
	s := start(t, "")
	put := func(ip, mac, hostname string) {
		c := ipam.CommitLease{Stamp: ipam.Stamp{At: time.Now()}, Subnet: "vm", MAC: mustMAC(t, mac),
			IP: netip.MustParseAddr(ip), Hostname: hostname, Expires: time.Now().Add(time.Hour)}
		if _, err := s.ipam.Apply(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	put("10.0.40.150", "52:54:00:00:01:50", "laptop")
	put("10.0.40.151", "52:54:00:00:01:51", "cp01") // a lease asking for a host's name
	// Answered as soon as the commit returns: no waiting.
	if got := s.answers(t, "laptop.k8s.example.com"); !slices.Equal(got, []string{"10.0.40.150"}) {
		t.Errorf("the lease's A: got %v", got)
	}
	if got := s.answers(t, "-x", "10.0.40.150"); !slices.Equal(got, []string{"laptop.k8s.example.com."}) {
		t.Errorf("the lease's PTR: got %v", got)
	}
	if got := s.answers(t, "cp01.k8s.example.com"); !slices.Equal(got, []string{"10.0.40.10"}) {
		t.Errorf("cp01: got %v, want only the host's address", got)
	}
	if got := status(s.dig(t, "-x", "10.0.40.151")); got != "NXDOMAIN" {
		t.Errorf("PTR of the clashing lease: got %s, want none", got)
	}
}

func mustMAC(t *testing.T, s string) site.MAC {
	t.Helper()
	mac, err := site.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

func TestQueryMetrics(t *testing.T) {
	testenv.Need(t, "dig")
	s := start(t, "")
	counts := func() map[string]float64 {
		got := map[string]float64{}
		families, err := s.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				key := f.GetName()
				for _, l := range m.GetLabel() {
					key += " " + l.GetName() + "=" + l.GetValue()
				}
				if m.GetCounter() != nil {
					got[key] = m.GetCounter().GetValue()
				} else {
					got[key] = float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
		return got
	}
	before := counts()
	s.dig(t, "cp01.k8s.example.com")
	s.dig(t, "nope.k8s.example.com")
	s.dig(t, "-x", "10.0.40.10")
	after := counts()
	for k, want := range map[string]float64{
		"infrad_dns_requests_total rcode=NOERROR type=A":   1,
		"infrad_dns_requests_total rcode=NXDOMAIN type=A":  1,
		"infrad_dns_requests_total rcode=NOERROR type=PTR": 1,
	} {
		if got := after[k] - before[k]; got != want {
			t.Errorf("%s: got %v more, want %v", k, got, want)
		}
	}
	// At least: a probe of Start's that timed out may still be answered meanwhile.
	if got := after["infrad_dns_request_duration_seconds"] - before["infrad_dns_request_duration_seconds"]; got < 3 {
		t.Errorf("request durations: got %v more, want at least 3", got)
	}
}

// TestStopWhileTheStoreChanges stops the service while changes keep the watch loop
// rebuilding, then starts it again on the same port.
func TestStopWhileTheStoreChanges(t *testing.T) {
	s := start(t, "")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			s.ipam.CreateHost(context.Background(), site.HostSpec{Name: fmt.Sprintf("churn%d", i), IP: fmt.Sprintf("10.0.40.%d", 130+i%20)})
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.svc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := s.svc.Start(t.Context()); err != nil {
		t.Fatalf("start after stop: %v", err)
	}
}

func TestResponseRateLimiting(t *testing.T) {
	s := start(t, "  rate_limit: 2")
	c := &dns.Client{Timeout: time.Second}
	var answered atomic.Int32
	var wg sync.WaitGroup
	for range 10 { // all at once: the bucket has no time to refill
		wg.Go(func() {
			if _, _, err := c.Exchange(new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA), s.addr); err == nil {
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	// Start's own probes took from the bucket too: at most the burst of 4 is answered.
	if n := answered.Load(); n == 0 || n > 4 {
		t.Errorf("ten queries at once at 2/s (burst 4): got %d answered", n)
	}
}

// busyWorkers serves testSite with a forwarder that reads and never answers, and
// floods it with forwarded queries until the workers are all waiting on it and their
// queue is full: a query is shed.
func busyWorkers(t *testing.T) *server {
	t.Helper()
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	s := start(t, fmt.Sprintf("  forwarders: [%q]\n  recursion_allow: [127.0.0.0/8]", silent.LocalAddr()))
	flood, err := net.Dial("udp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	for i := range 3 * (waitWorkers + waitQueue) {
		q, _ := new(dns.Msg).SetQuestion(fmt.Sprintf("n%d.outside.test.", i), dns.TypeA).Pack()
		flood.Write(q)
		if i%64 == 0 {
			time.Sleep(time.Millisecond) // the kernel's buffer drops what comes too fast, not the door
		}
	}
	testenv.WaitFor(t, "a query shed", func() bool { return testutil.ToFloat64(s.svc.metrics.shed) >= 1 })
	return s
}

// TestShedsQueriesThatWait: queries that wait on an upstream that does not answer
// fill the workers and their queue; past it they are dropped unanswered and counted,
// while the zones' names are answered all along, from the readers.
func TestShedsQueriesThatWait(t *testing.T) {
	s := busyWorkers(t)
	cl := &dns.Client{Timeout: 2 * time.Second}
	q := new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA)
	if r, _, err := cl.Exchange(q, s.addr); err != nil || len(r.Answer) != 1 {
		t.Errorf("with the workers busy: %v %v, want the host's address", r, err)
	}
}

// TestUnsignedUpdatesDoNotWait: while the workers are all busy (waiting on an upstream
// that does not answer) and their queue is full, unsigned UPDATEs are still refused,
// each answered, by the readers: they never wait for the workers, so a flood of them
// cannot crowd out the signed ones.
func TestUnsignedUpdatesDoNotWait(t *testing.T) {
	s := busyWorkers(t)
	c := &dns.Client{Timeout: 2 * time.Second}
	for i := range 20 {
		u := new(dns.Msg).SetUpdate("k8s.example.com.")
		rr, _ := dns.NewRR(fmt.Sprintf("evil%d.k8s.example.com. 60 IN A 10.0.40.66", i))
		u.Insert([]dns.RR{rr})
		if r, _, err := c.Exchange(u, s.addr); err != nil || r.Rcode != dns.RcodeRefused {
			t.Fatalf("an unsigned UPDATE while the workers are busy: %v %v, want REFUSED", r, err)
		}
	}
}

// TestAbsoluteHostName: a host named by an absolute name in an extra zone has its A
// and PTR there, and is in that zone's transfer; one in no zone of the site, or one
// label under the domain written absolutely, is refused.
func TestAbsoluteHostName(t *testing.T) {
	testenv.Need(t, "dig")
	s := start(t, `  transfer_from: [127.0.0.0/8]`)
	if _, err := s.ipam.CreateHost(context.Background(), site.HostSpec{Name: "Web03.Example.org.", IP: "10.0.40.33"}); err != nil {
		t.Fatal(err)
	}
	if got := s.answers(t, "web03.example.org", "A"); !slices.Equal(got, []string{"10.0.40.33"}) {
		t.Errorf("A: %v", got)
	}
	if got := s.answers(t, "-x", "10.0.40.33"); !slices.Equal(got, []string{"web03.example.org."}) {
		t.Errorf("PTR: %v", got)
	}
	if out := s.dig(t, "example.org", "AXFR"); !strings.Contains(out, "web03.example.org.\t120\tIN\tA\t10.0.40.33") {
		t.Errorf("the example.org transfer lacks the host:\n%s", out)
	}
	for name, want := range map[string]string{
		"web04.elsewhere.test.":  "outside the site's zones",
		"web05.k8s.example.com.": `name it "web05"`,
	} {
		_, err := s.ipam.CreateHost(context.Background(), site.HostSpec{Name: name, IP: "10.0.40.34"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("host %s: got %v, want %q", name, err, want)
		}
	}
}

// TestWildcardListenAnswersFromTheAddressAsked: bound to 0.0.0.0 or [::], infrad
// answers each query from the address it came to (a client's connected socket takes
// no other), and [::] answers IPv4 clients too.
func TestWildcardListenAnswersFromTheAddressAsked(t *testing.T) {
	for _, tc := range []struct {
		listen string
		ask    []string
	}{
		{"0.0.0.0", []string{"127.0.0.1", "127.0.0.2"}},
		{"[::]", []string{"127.0.0.1", "127.0.0.2", "[::1]"}},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			port := testenv.FreePort(t)
			m, site := sitetest.IPAM(t, []byte(strings.Replace(fmt.Sprintf(testSite, port, "  advertise: 127.0.0.1"), "127.0.0.1:", tc.listen+":", 1)))
			svc := New(Options{Site: site, IPAM: m, Registry: prometheus.NewRegistry()})
			if err := svc.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			defer svc.Stop(context.Background())
			for _, addr := range tc.ask {
				for _, network := range []string{"udp", "tcp"} {
					c := &dns.Client{Net: network, Timeout: 2 * time.Second}
					r, _, err := c.Exchange(new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA), fmt.Sprintf("%s:%d", addr, port))
					if err != nil || len(r.Answer) != 1 {
						t.Errorf("%s over %s: %v %v, want the host's address", addr, network, r, err)
					}
				}
			}
		})
	}
}

// TestReloadMovesListenersAndForwarders: a reload binds the listen addresses added and
// closes those gone, keeping the others, and new forwarders answer the next forwarded
// query; a reload whose new address is taken changes nothing and says so.
func TestReloadMovesListenersAndForwarders(t *testing.T) {
	first := testenv.StubDNS(t, ".", netip.MustParseAddr("192.0.2.1")).String()
	second := testenv.StubDNS(t, ".", netip.MustParseAddr("192.0.2.2")).String()
	portA, portB := testenv.FreePort(t), testenv.FreePort(t)
	siteOf := func(forwarder string, ports ...int) *config.Site {
		var listen []string
		for _, p := range ports {
			listen = append(listen, fmt.Sprintf("%q", fmt.Sprintf("127.0.0.1:%d", p)))
		}
		yaml := strings.Replace(fmt.Sprintf(testSite, portA, fmt.Sprintf("  forwarders: [%q]", forwarder)),
			fmt.Sprintf(`listen: ["127.0.0.1:%d"]`, portA), "listen: ["+strings.Join(listen, ", ")+"]", 1)
		site, err := config.Parse("site.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		return site
	}
	m, _ := sitetest.IPAM(t, []byte(fmt.Sprintf(testSite, portA, "")))
	svc := New(Options{Site: siteOf(first, portA), IPAM: m, Registry: prometheus.NewRegistry()})
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer svc.Stop(context.Background())
	ask := func(port int, name string) (string, error) {
		c := &dns.Client{Timeout: 500 * time.Millisecond}
		r, _, err := c.Exchange(new(dns.Msg).SetQuestion(name, dns.TypeA), fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return "", err
		}
		if len(r.Answer) != 1 {
			return "", fmt.Errorf("%s", dns.RcodeToString[r.Rcode])
		}
		return r.Answer[0].(*dns.A).A.String(), nil
	}
	if got, err := ask(portA, "outside.example.net."); got != "192.0.2.1" {
		t.Fatalf("before the reload: %q %v", got, err)
	}

	if err := svc.Reload(siteOf(second, portA, portB)); err != nil {
		t.Fatal(err)
	}
	for _, port := range []int{portA, portB} {
		if got, err := ask(port, "cp01.k8s.example.com."); got != "10.0.40.10" {
			t.Errorf("port %d after the reload: %q %v", port, got, err)
		}
	}
	if got, err := ask(portB, "outside.example.net."); got != "192.0.2.2" {
		t.Errorf("a forwarded name after the reload: %q %v, want the new forwarder's", got, err)
	}

	if err := svc.Reload(siteOf(second, portB)); err != nil {
		t.Fatal(err)
	}
	if got, err := ask(portA, "cp01.k8s.example.com."); err == nil {
		t.Errorf("the address reloaded away still answers: %q", got)
	}
	if got, err := ask(portB, "cp01.k8s.example.com."); got != "10.0.40.10" {
		t.Errorf("the address kept: %q %v", got, err)
	}

	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if err := svc.Reload(siteOf(second, portB, taken.LocalAddr().(*net.UDPAddr).Port)); err == nil {
		t.Error("a reload onto a taken address: no error")
	}
	if got, err := ask(portB, "cp01.k8s.example.com."); got != "10.0.40.10" {
		t.Errorf("after a refused reload: %q %v", got, err)
	}
	if h := svc.Health(); h.State != service.StateDegraded || !strings.Contains(h.LastError, "could not be bound") {
		t.Errorf("health after a refused reload: %+v, want degraded, saying why", h)
	}
}

// TestDualStackHost: a host with an ip and an ip6 is one object: dig finds its A and
// its AAAA (from the fast path and from ANY), a PTR in each reverse zone, and the
// zones' transfer holds all four; its ip6 is refused to another host, and a rename
// takes all four with it.
func TestDualStackHost(t *testing.T) {
	testenv.Need(t, "dig")
	s := startSite(t, func(port int) string {
		return strings.Replace(fmt.Sprintf(testSite, port, ""), `{name: cp02, ip: 10.0.40.11}`, `{name: cp02, ip: 10.0.40.11, ip6: "fd00:40::11"}`, 1)
	})
	check := func(name string) {
		t.Helper()
		for _, q := range []struct{ name, qtype, want string }{
			{name + ".k8s.example.com.", "A", "10.0.40.11"},
			{name + ".k8s.example.com.", "AAAA", "fd00:40::11"},
			{"11.40.0.10.in-addr.arpa.", "PTR", name + ".k8s.example.com."},
			{"1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.0.0.0.0.d.f.ip6.arpa.", "PTR", name + ".k8s.example.com."},
		} {
			if got := s.answers(t, q.name, q.qtype); !slices.Equal(got, []string{q.want}) {
				t.Errorf("%s %s: got %v, want %s", q.name, q.qtype, got, q.want)
			}
		}
		if got := s.answers(t, name+".k8s.example.com.", "ANY"); !slices.Contains(got, "10.0.40.11") || !slices.Contains(got, "fd00:40::11") {
			t.Errorf("%s ANY: got %v, want both addresses", name, got)
		}
		axfr := s.dig(t, "-y", "hmac-sha256:external-dns:"+tsigSecret, "0.0.0.0.0.0.0.0.0.4.0.0.0.0.d.f.ip6.arpa.", "AXFR")
		if !strings.Contains(axfr, name+".k8s.example.com.") {
			t.Errorf("the ip6.arpa zone's transfer lacks %s's PTR:\n%s", name, axfr)
		}
	}
	check("cp02")
	ctx := t.Context()
	if _, err := s.ipam.CreateHost(ctx, site.HostSpec{Name: "dup", IP: "10.0.40.60", IP6: "fd00:40::11"}); !errors.Is(err, ipam.ErrConflict) {
		t.Errorf("another host with cp02's ip6: got %v, want a conflict", err)
	}
	if _, err := s.ipam.CreateHost(ctx, site.HostSpec{Name: "w6", IP: "10.0.40.61", IP6: "fd00:40::61"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ipam.UpdateHost(ctx, "w6", site.HostSpec{Name: "w7", IP: "10.0.40.61", IP6: "fd00:40::62"}); err != nil {
		t.Fatal(err)
	}
	if got := s.answers(t, "w7.k8s.example.com.", "AAAA"); !slices.Equal(got, []string{"fd00:40::62"}) {
		t.Errorf("w7 AAAA after the rename: %v", got)
	}
	if out := s.dig(t, "1.6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.0.0.0.0.d.f.ip6.arpa.", "PTR"); !strings.Contains(out, "status: NXDOMAIN") {
		t.Errorf("the old ip6's reverse name after the change: want NXDOMAIN:\n%s", out)
	}
	if got := s.answers(t, "w6.k8s.example.com.", "AAAA"); len(got) != 0 {
		t.Errorf("the old name's AAAA after the rename: %v", got)
	}
}
