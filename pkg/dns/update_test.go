package dns

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// nsupdate runs nsupdate with the commands given, signed with key when it is not "",
// in zone k8s.example.com unless the first command names another.
func (s *server) nsupdate(t *testing.T, key string, commands ...string) (string, error) {
	t.Helper()
	args := []string{"-t", "3"}
	if key != "" {
		args = append(args, "-y", key)
	}
	if !strings.HasPrefix(commands[0], "zone ") {
		commands = append([]string{"zone k8s.example.com"}, commands...)
	}
	script := fmt.Sprintf("server 127.0.0.1 %d\n%s\nsend\n", s.port, strings.Join(commands, "\n"))
	cmd := exec.Command("nsupdate", args...)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

const goodKey = "hmac-sha256:external-dns:" + tsigSecret

func TestUpdateWithTSIG(t *testing.T) {
	testenv.Need(t, "nsupdate", "dig")
	s := start(t, "")
	if out, err := s.nsupdate(t, goodKey,
		"update add acme.k8s.example.com 120 TXT \"token-1\"",
		"update add lb.k8s.example.com 300 A 10.0.40.110"); err != nil {
		t.Fatalf("signed update: %v\n%s", err, out)
	}
	// NOERROR left after the change was published: the names answer at once.
	if got := s.answers(t, "acme.k8s.example.com", "TXT"); !slices.Equal(got, []string{`"token-1"`}) {
		t.Errorf("right after NOERROR: TXT %v", got)
	}
	if got := s.answers(t, "lb.k8s.example.com"); !slices.Equal(got, []string{"10.0.40.110"}) {
		t.Errorf("right after NOERROR: A %v", got)
	}
	records, _ := s.ipam.Records()
	var got []string
	for _, r := range records {
		if r.Owner == site.OwnerAPI {
			got = append(got, fmt.Sprintf("%s %s %s %d", r.Name, r.Type, r.Value, *r.TTL))
		}
	}
	slices.Sort(got)
	want := []string{`acme.k8s.example.com. TXT "token-1" 120`, "lb.k8s.example.com. A 10.0.40.110 300"}
	if !slices.Equal(got, want) {
		t.Errorf("records in IPAM: got %v, want %v", got, want)
	}

	if out, err := s.nsupdate(t, goodKey, "update delete acme.k8s.example.com TXT"); err != nil {
		t.Fatalf("signed delete: %v\n%s", err, out)
	}
	if got := status(s.dig(t, "acme.k8s.example.com", "TXT")); got != "NXDOMAIN" {
		t.Errorf("right after the delete: got %s, want NXDOMAIN", got)
	}

	t.Run("prerequisite not met", func(t *testing.T) {
		out, err := s.nsupdate(t, goodKey, "prereq nxdomain lb.k8s.example.com", "update add lb.k8s.example.com 300 A 10.0.40.111")
		if err == nil || !strings.Contains(out, "YXDOMAIN") {
			t.Errorf("got %v %q, want YXDOMAIN", err, out)
		}
	})
}

// TestUpdateWithHMACMD5: a key of hmac-md5, cert-manager's default algorithm, signs
// updates as BIND and Knot take them; its secret under another algorithm is BADKEY.
func TestUpdateWithHMACMD5(t *testing.T) {
	testenv.Need(t, "nsupdate", "dig")
	s := startSite(t, func(port int) string {
		return strings.Replace(fmt.Sprintf(testSite, port, ""), "  tsig_keys:\n", "  tsig_keys:\n    - {name: cert-manager, algorithm: hmac-md5, secret: \""+tsigSecret+"\"}\n", 1)
	})
	if out, err := s.nsupdate(t, "hmac-md5:cert-manager:"+tsigSecret, "update add _acme-challenge.k8s.example.com 60 TXT \"token\""); err != nil {
		t.Fatalf("an hmac-md5 update: %v\n%s", err, out)
	}
	if got := s.answers(t, "_acme-challenge.k8s.example.com", "TXT"); !slices.Equal(got, []string{`"token"`}) {
		t.Errorf("after the update: %v", got)
	}
	if out, err := s.nsupdate(t, "hmac-sha256:cert-manager:"+tsigSecret, "update add evil.k8s.example.com 300 A 10.0.40.66"); err == nil || !strings.Contains(out, "BADKEY") {
		t.Errorf("the md5 key's secret under sha256: %v %q, want BADKEY", err, out)
	}
}

func TestUpdateRefusals(t *testing.T) {
	testenv.Need(t, "nsupdate", "dig")
	s := start(t, "")
	tests := []struct {
		name, key, command, want string
	}{
		{"unsigned", "", "update add evil.k8s.example.com 300 A 10.0.40.66", "REFUSED"},
		{"wrong secret", "hmac-sha256:external-dns:d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==", "update add evil.k8s.example.com 300 A 10.0.40.66", "NOTAUTH(BADSIG)"},
		{"unknown key", "hmac-sha256:nobody:" + tsigSecret, "update add evil.k8s.example.com 300 A 10.0.40.66", "NOTAUTH(BADKEY)"},
		{"the key's secret under another algorithm", "hmac-sha512:external-dns:" + tsigSecret, "update add evil.k8s.example.com 300 A 10.0.40.66", "NOTAUTH(BADKEY)"},
		{"the key's secret under a weaker algorithm", "hmac-sha1:external-dns:" + tsigSecret, "update add evil.k8s.example.com 300 A 10.0.40.66", "NOTAUTH(BADKEY)"},
		{"a host's name", goodKey, "update add cp01.k8s.example.com 300 A 10.0.40.66", "REFUSED"},
		{"a CNAME at a host's name", goodKey, "update add cp01.k8s.example.com 300 CNAME api", "REFUSED"},
		{"a second name for a host's address", goodKey, "zone 40.0.10.in-addr.arpa\nupdate add 10.40.0.10.in-addr.arpa 300 PTR evil.k8s.example.com.", "REFUSED"},
		{"deleting a host's PTR", goodKey, "zone 40.0.10.in-addr.arpa\nupdate delete 10.40.0.10.in-addr.arpa PTR", "REFUSED"},
		{"the name server's glue", goodKey, "update add ns.k8s.example.com 300 A 10.0.40.66", "REFUSED"},
		{"deleting a host", goodKey, "update delete cp01.k8s.example.com A", "REFUSED"},
		{"a site-file record", goodKey, "update delete api.k8s.example.com A", "REFUSED"},
		{"an NS record", goodKey, "update add k8s.example.com 300 NS evil.example.net.", "REFUSED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := s.nsupdate(t, tc.key, tc.command)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("got %v %q, want %s", err, out, tc.want)
			}
			if strings.Contains(out, "clocks are unsynchronized") { // the Time Signed of an error is the server's
				t.Errorf("nsupdate blames the clocks: %q", out)
			}
		})
	}
	if got := status(s.dig(t, "evil.k8s.example.com")); got != "NXDOMAIN" {
		t.Errorf("a refused update left a name: got %s", got)
	}
	if got := s.answers(t, "api.k8s.example.com"); !slices.Equal(got, []string{"10.0.40.100"}) {
		t.Errorf("a refused delete changed api: got %v", got)
	}
}

// TestUpdateAnsweredBeforeItsAck: nsupdate, then dig at once, many times.
func TestUpdateAnsweredBeforeItsAck(t *testing.T) {
	testenv.Need(t, "nsupdate", "dig")
	s := start(t, "")
	for i := range 16 {
		name, ip := fmt.Sprintf("u%02d.k8s.example.com", i), fmt.Sprintf("10.0.40.%d", 30+i)
		if out, err := s.nsupdate(t, goodKey, fmt.Sprintf("update add %s 300 A %s", name, ip)); err != nil {
			t.Fatalf("update %s: %v\n%s", name, err, out)
		}
		if got := s.answers(t, name); !slices.Equal(got, []string{ip}) {
			t.Errorf("%s right after NOERROR: got %v, want %s", name, got, ip)
		}
	}
}

// TestBackToBackPrerequisites races two updates whose prerequisites exclude each
// other ("prereq nxdomain N; update add N"), sent at the same moment, many rounds:
// one is applied, the other refused YXDOMAIN, and N has the winner's address alone.
// The first rounds use two nsupdate processes, the rest a TSIG client in the test.
func TestBackToBackPrerequisites(t *testing.T) {
	testenv.Need(t, "nsupdate", "dig")
	s := start(t, "")
	for round := range 100 {
		name := fmt.Sprintf("race%03d.k8s.example.com.", round)
		rcodes := make([]string, 2)
		var wg sync.WaitGroup
		for c := range 2 {
			ip := fmt.Sprintf("10.0.40.%d", 30+c)
			wg.Go(func() {
				if round < 10 {
					out, err := s.nsupdate(t, goodKey, "prereq nxdomain "+name, fmt.Sprintf("update add %s 300 A %s", name, ip))
					switch {
					case err == nil:
						rcodes[c] = "NOERROR"
					case strings.Contains(out, "YXDOMAIN"):
						rcodes[c] = "YXDOMAIN"
					default:
						rcodes[c] = out
					}
					return
				}
				rcodes[c] = s.signedUpdate(t, name, ip)
			})
		}
		wg.Wait()
		slices.Sort(rcodes)
		if !slices.Equal(rcodes, []string{"NOERROR", "YXDOMAIN"}) {
			t.Fatalf("round %d: got %v, want one NOERROR and one YXDOMAIN", round, rcodes)
		}
		if got := s.answers(t, name); len(got) != 1 {
			t.Fatalf("round %d: %s has %v, want the winner's address alone", round, name, got)
		}
	}
}

// signedUpdate sends "prereq nxdomain name; update add name A ip", TSIG-signed, and
// returns the rcode.
func (s *server) signedUpdate(t *testing.T, name, ip string) string {
	m := new(dns.Msg).SetUpdate("k8s.example.com.")
	rr, err := dns.NewRR(fmt.Sprintf("%s 300 IN A %s", name, ip))
	if err != nil {
		t.Error(err)
		return ""
	}
	m.NameNotUsed([]dns.RR{rr})
	m.Insert([]dns.RR{rr})
	m.SetTsig("external-dns.", dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{TsigSecret: map[string]string{"external-dns.": tsigSecret}, Timeout: 3 * time.Second}
	r, _, err := c.Exchange(m, s.addr)
	if err != nil {
		t.Error(err)
		return ""
	}
	return dns.RcodeToString[r.Rcode]
}

// TestOneTTLPerRRset: records added to one name and type at different TTLs are one
// RRset with one TTL (RFC 2181 §5.2), the lowest, in answers and in a transfer.
func TestOneTTLPerRRset(t *testing.T) {
	testenv.Need(t, "nsupdate", "dig")
	s := start(t, "")
	if out, err := s.nsupdate(t, goodKey,
		"update add multi.k8s.example.com 600 A 10.0.40.60",
		"update add multi.k8s.example.com 30 A 10.0.40.61",
		"update add multi.k8s.example.com 300 A 10.0.40.62"); err != nil {
		t.Fatalf("nsupdate: %v\n%s", err, out)
	}
	ttls := func(out string) []string {
		var got []string
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 5 && f[0] == "multi.k8s.example.com." && f[3] == "A" {
				got = append(got, f[1])
			}
		}
		return got
	}
	if got := ttls(s.dig(t, "multi.k8s.example.com", "A", "+noall", "+answer")); !slices.Equal(got, []string{"30", "30", "30"}) {
		t.Errorf("answer TTLs %v, want 30 for all three", got)
	}
	if got := ttls(s.dig(t, "k8s.example.com", "AXFR", "-y", goodKey)); !slices.Equal(got, []string{"30", "30", "30"}) {
		t.Errorf("transferred TTLs %v, want 30 for all three", got)
	}
}

// TestUpdateAtTTLZero: an UPDATE's TTL is the record's own, 0 too (a record without
// one, from the site file or the API, takes dns.ttl).
func TestUpdateAtTTLZero(t *testing.T) {
	testenv.Need(t, "nsupdate", "dig")
	s := start(t, "")
	if out, err := s.nsupdate(t, goodKey, "update add zero.k8s.example.com 0 A 10.0.40.80"); err != nil {
		t.Fatalf("nsupdate: %v\n%s", err, out)
	}
	for name, want := range map[string]string{"zero.k8s.example.com.": "0", "api.k8s.example.com.": "120"} {
		f := strings.Fields(s.dig(t, name, "A", "+noall", "+answer"))
		if len(f) < 2 || f[1] != want {
			t.Errorf("%s: TTL %v, want %s", name, f, want)
		}
	}
}

// TestReloadedKeysSign: a key added by a reload signs updates at once (CoreDNS's
// server holds the keys: a change of keys restarts it with them).
func TestReloadedKeysSign(t *testing.T) {
	testenv.Need(t, "nsupdate")
	s := start(t, "")
	const newKey = "hmac-sha256:new-key:" + tsigSecret
	if out, err := s.nsupdate(t, newKey, "update add before.k8s.example.com 300 A 10.0.40.90"); err == nil || !strings.Contains(out, "BADKEY") {
		t.Fatalf("an unknown key: %v %q, want BADKEY", err, out)
	}
	yaml := fmt.Sprintf(testSite, s.port, "")
	yaml = strings.Replace(yaml, "  tsig_keys:\n", "  tsig_keys:\n    - {name: new-key, algorithm: hmac-sha256, secret: \""+tsigSecret+"\"}\n", 1)
	site, err := config.Parse("site.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.svc.Reload(site); err != nil {
		t.Fatal(err)
	}
	if out, err := s.nsupdate(t, newKey, "update add after.k8s.example.com 300 A 10.0.40.91"); err != nil {
		t.Errorf("the reloaded key: %v\n%s", err, out)
	}
}

// TestBadTime: an update signed an hour ago is not applied, and gets NOTAUTH with
// BADTIME and the server's time in Other Data (RFC 8945 §5.2.3).
func TestBadTime(t *testing.T) {
	s := start(t, "")
	late := func() *dns.Msg {
		m := new(dns.Msg).SetUpdate("k8s.example.com.")
		rr, _ := dns.NewRR("late.k8s.example.com. 300 IN A 10.0.40.95")
		m.Insert([]dns.RR{rr})
		m.SetTsig("external-dns.", dns.HmacSHA256, 300, time.Now().Add(-time.Hour).Unix())
		return m
	}
	buf, _, err := dns.TsigGenerate(late(), tsigSecret, "", false)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write(buf)
	b := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := conn.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	var r dns.Msg
	if err := r.Unpack(b[:n]); err != nil {
		t.Fatal(err)
	}
	tsig := r.IsTsig()
	if r.Rcode != dns.RcodeNotAuth || tsig == nil || tsig.Error != dns.RcodeBadTime || tsig.OtherLen != 6 {
		t.Fatalf("got %s, TSIG %v; want NOTAUTH, BADTIME with the server's time", dns.RcodeToString[r.Rcode], tsig)
	}
	// (Its MAC does not verify with miekg/dns's client, nor did the answer of CoreDNS's
	// own tsig plugin before: not resolved, and not asserted here.)
	if got := status(s.dig(t, "late.k8s.example.com")); got != "NXDOMAIN" {
		t.Errorf("the late update was applied: %s", got)
	}
}

// TestPrerequisitesAgreeWithAnswers: over random sites, for names of every kind
// (hosts, leases, records, their reverse names, the glue, the apexes, empty
// non-terminals, wildcard matches, names that do not exist) and every type,
// "prereq yxrrset NAME TYPE" holds exactly when infrad answers that RRset at that
// name, and "prereq yxdomain NAME" exactly when it answers some RRset there.
func TestPrerequisitesAgreeWithAnswers(t *testing.T) {
	s := start(t, "")
	r := rand.New(rand.NewPCG(26, 1))
	ctx := t.Context()
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeMX, dns.TypeCNAME, dns.TypePTR, dns.TypeNS, dns.TypeSOA, dns.TypeSRV}
	labels := []string{"a", "b", "www", "cp01", "deep", "x.deep", "ns", "mail", "y.apps"}
	for round := range 6 {
		for i := range 8 { // the site grows a little each round
			n := round*8 + i
			switch r.IntN(4) {
			case 0:
				s.ipam.CreateHost(ctx, site.HostSpec{Name: fmt.Sprintf("h%d", n), IP: fmt.Sprintf("10.0.40.%d", 20+n)})
			case 1:
				s.ipam.CreateRecord(ctx, site.RecordSpec{Name: labels[r.IntN(len(labels))], Type: "TXT", Value: fmt.Sprint(n)})
			case 2:
				s.ipam.CreateRecord(ctx, site.RecordSpec{Name: fmt.Sprintf("%d.40.0.10.in-addr.arpa.", 130+n), Type: "PTR", Value: fmt.Sprintf("p%d", n)})
			case 3:
				at := time.Now()
				s.ipam.Apply(ctx, ipam.CommitLease{Stamp: ipam.Stamp{At: at}, Subnet: "vm", MAC: mustMAC(t, fmt.Sprintf("52:54:00:bb:00:%02x", n)),
					IP: netip.MustParseAddr(fmt.Sprintf("10.0.40.%d", 150+n)), Hostname: labels[r.IntN(len(labels))], Expires: at.Add(time.Hour)})
			}
		}
		m := s.ipam.Model()
		v := view{m: m}
		var names []string
		for _, z := range m.Zones() {
			names = append(names, m.Owners(z)...)
		}
		for _, l := range labels {
			names = append(names, l+".k8s.example.com.", "nope."+l+".k8s.example.com.")
		}
		names = append(names, "sub.k8s.example.com.", "12.40.0.10.in-addr.arpa.", "anything.apps.k8s.example.com.")
		for _, name := range names {
			zone := m.ZoneOf(name)
			some := false
			for _, qtype := range types {
				msg := new(dns.Msg)
				v.answer(msg, name, qtype, zone)
				answered := len(msg.Answer) > 0 && strings.EqualFold(msg.Answer[0].Header().Name, name) && msg.Answer[0].Header().Rrtype == qtype
				some = some || (len(msg.Answer) > 0 && strings.EqualFold(msg.Answer[0].Header().Name, name) && !isWildcardAnswer(m, name))
				err := s.ipam.Update(ctx, site.Name(zone), []ipam.Prereq{{Name: site.Name(name), Class: "ANY", Type: dns.TypeToString[qtype]}}, nil)
				if holds := err == nil; holds != (answered && !isWildcardAnswer(m, name)) {
					t.Errorf("round %d: prereq yxrrset %s %s holds: %v (%v), answered: %v", round, name, dns.TypeToString[qtype], holds, err, answered)
				}
			}
			err := s.ipam.Update(ctx, site.Name(zone), []ipam.Prereq{{Name: site.Name(name), Class: "ANY", Type: "ANY"}}, nil)
			if holds := err == nil; holds != some {
				t.Errorf("round %d: prereq yxdomain %s holds: %v (%v), answered: %v", round, name, holds, err, some)
			}
		}
	}
}

// isWildcardAnswer reports whether the answers at name come from a wildcard: a
// prerequisite reads the names as they are (RFC 2136 §3.2), with no synthesis.
func isWildcardAnswer(m *ipam.Model, name string) bool { return !m.Exists(name) }
