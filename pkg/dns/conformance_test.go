package dns

import (
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/internal/testenv"
)

// kdig runs kdig against addr and returns its output.
func kdig(t *testing.T, addr string, args ...string) string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command("kdig", append([]string{"@" + host, "-p", port, "+time=2", "+retry=0"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kdig %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestSameAnswersAsNSD: NSD, a secondary of infrad's zones in the same test, and
// infrad answer a sample of questions alike: status, the aa flag, the answer and the
// authority sections, record for record.
func TestSameAnswersAsNSD(t *testing.T) {
	testenv.Need(t, "nsd", "kdig")
	s := start(t, `  transfer_from: [127.0.0.0/8]`)
	fwdPort, revPort := testenv.FreePort(t), testenv.FreePort(t)
	nsd(t, fwdPort, "k8s.example.com", s.addr)
	nsd(t, revPort, "40.0.10.in-addr.arpa", s.addr)
	for _, port := range []int{fwdPort, revPort} {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		testenv.WaitFor(t, "NSD to load the zone", func() bool {
			out, err := exec.Command("kdig", "@127.0.0.1", "-p", fmt.Sprint(port), "+short", "+time=1", "+retry=0", "-t", "SOA", map[int]string{fwdPort: "k8s.example.com", revPort: "40.0.10.in-addr.arpa"}[port]).Output()
			return err == nil && strings.TrimSpace(string(out)) != "" && addr != ""
		})
	}
	for _, q := range [][]string{
		{"cp01.k8s.example.com", "A"}, {"cp6.k8s.example.com", "AAAA"}, {"api.k8s.example.com", "A"},
		{"web.apps.k8s.example.com", "A"}, {"_etcd-server-ssl._tcp.k8s.example.com", "SRV"},
		{"k8s.example.com", "NS"}, {"k8s.example.com", "SOA"}, {"k8s.example.com", "MX"},
		{"k8s.example.com", "TXT"}, {"registry.k8s.example.com", "CNAME"},
		{"nope.k8s.example.com", "A"}, {"cp01.k8s.example.com", "TXT"}, {"deep.sub.k8s.example.com", "TXT"},
		{"10.40.0.10.in-addr.arpa", "PTR"}, {"99.40.0.10.in-addr.arpa", "PTR"},
	} {
		nsdAddr := fmt.Sprintf("127.0.0.1:%d", fwdPort)
		if strings.HasSuffix(q[0], ".arpa") {
			nsdAddr = fmt.Sprintf("127.0.0.1:%d", revPort)
		}
		// The answer, with the status and flags; and for a negative answer the authority
		// section too. (A positive answer's authority section is a server's choice: NSD
		// adds the zone's NS, infrad gives minimal responses, as BIND does by default.)
		ours := comparable(kdig(t, s.addr, append([]string{"+norec", "+noall", "+answer", "+header"}, q...)...))
		theirs := comparable(kdig(t, nsdAddr, append([]string{"+norec", "+noall", "+answer", "+header"}, q...)...))
		if !slices.Equal(ours, theirs) {
			t.Errorf("%s %s:\ninfrad:\n  %s\nNSD:\n  %s", q[0], q[1], strings.Join(ours, "\n  "), strings.Join(theirs, "\n  "))
			continue
		}
		if len(ours) > 2 {
			continue // status, flags and an answer
		}
		ours = comparable(kdig(t, s.addr, append([]string{"+norec", "+noall", "+authority"}, q...)...))
		theirs = comparable(kdig(t, nsdAddr, append([]string{"+norec", "+noall", "+authority"}, q...)...))
		if len(ours) == 0 || !slices.Equal(ours, theirs) {
			t.Errorf("%s %s, authority:\ninfrad:\n  %s\nNSD:\n  %s", q[0], q[1], strings.Join(ours, "\n  "), strings.Join(theirs, "\n  "))
		}
	}
}

// comparable is kdig's output as sorted lines, without what differs between two
// servers of one zone: the message ID, and the counts of the sections not compared.
func comparable(out string) []string {
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, ";; Received") || strings.HasPrefix(line, ";; Time") || strings.HasPrefix(line, ";; From"):
		case strings.HasPrefix(line, ";; ->>HEADER<<-"):
			status, _, _ := strings.Cut(line, "; id:")
			lines = append(lines, status)
		case strings.HasPrefix(line, ";; Flags:"):
			flags, _, _ := strings.Cut(strings.TrimPrefix(line, ";; Flags: "), "; QUERY")
			lines = append(lines, "flags: "+flags)
		default:
			lines = append(lines, strings.Join(strings.Fields(line), " "))
		}
	}
	slices.Sort(lines)
	return lines
}

// TestProtocolDetails: what peers check of a server's EDNS and recursion handling,
// with dig where dig can ask it.
func TestProtocolDetails(t *testing.T) {
	testenv.Need(t, "dig")
	// An upstream that claims authority for what it answers: infrad's forwarded answer
	// must not.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		m.Authoritative, m.RecursionAvailable = true, true
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
		w.WriteMsg(m)
	})}
	go up.ActivateAndServe()
	t.Cleanup(func() { up.Shutdown() })
	var big strings.Builder
	for i := range 20 {
		fmt.Fprintf(&big, "\n    - {name: big, type: TXT, value: \"%02d %s\"}", i, strings.Repeat("x", 40))
	}
	s := start(t, fmt.Sprintf("%s\n  forwarders: [%q]", big.String(), pc.LocalAddr()))

	t.Run("EDNS Z flags are not echoed", func(t *testing.T) {
		out := s.dig(t, "cp01.k8s.example.com", "+ednsflags=0x7fff")
		if !strings.Contains(out, "EDNS: version: 0") || strings.Contains(out, "MBZ") {
			t.Errorf("dig +ednsflags=0x7fff:\n%s", out)
		}
	})
	t.Run("EDNS version 1 is BADVERS, with infrad's UDP size", func(t *testing.T) {
		out := s.dig(t, "cp01.k8s.example.com", "+edns=1", "+noednsnegotiation")
		if status(out) != "BADVERS" || !strings.Contains(out, "EDNS: version: 0") || !strings.Contains(out, fmt.Sprintf("udp: %d", maxUDPSize)) {
			t.Errorf("dig +edns=1:\n%s", out)
		}
	})
	t.Run("an answer larger than the client's size is truncated, and whole over TCP", func(t *testing.T) {
		m := new(dns.Msg).SetQuestion("big.k8s.example.com.", dns.TypeTXT)
		r, err := dns.Exchange(m, s.addr)
		if r != nil {
			r.Compress = true // as it came
		}
		if err != nil || !r.Truncated || r.Len() > dns.MinMsgSize {
			t.Fatalf("over UDP without EDNS: %v, %d bytes, truncated %v; want at most 512 bytes, truncated", err, r.Len(), r != nil && r.Truncated)
		}
		r, _, err = (&dns.Client{Net: "tcp"}).Exchange(m, s.addr)
		if err != nil || r.Truncated || len(r.Answer) != 20 {
			t.Errorf("over TCP: %v, %d records, truncated %v; want all 20", err, len(r.Answer), r != nil && r.Truncated)
		}
	})
	t.Run("a signed answer larger than 512 bytes is truncated, and still signed", func(t *testing.T) {
		m := new(dns.Msg).SetQuestion("big.k8s.example.com.", dns.TypeTXT)
		m.SetTsig("external-dns.", dns.HmacSHA256, 300, time.Now().Unix())
		c := &dns.Client{TsigSecret: map[string]string{"external-dns.": tsigSecret}}
		r, _, err := c.Exchange(m, s.addr) // (fails when the reply's signature does not verify)
		if err != nil || !r.Truncated || r.IsTsig() == nil {
			t.Fatalf("%v, truncated %v: want a truncated, signed reply", err, r != nil && r.Truncated)
		}
		if r.Compress = true; r.Len() > dns.MinMsgSize {
			t.Errorf("the reply takes %d bytes, more than the 512 a client without EDNS takes", r.Len())
		}
	})
	t.Run("a forwarded answer has ra and not the upstream's aa", func(t *testing.T) {
		out := s.dig(t, "www.outside.test")
		flags := regexp.MustCompile(`flags: ([a-z ]+);`).FindStringSubmatch(out)
		if !strings.Contains(out, "192.0.2.1") || len(flags) < 2 || !slices.Contains(strings.Fields(flags[1]), "ra") || slices.Contains(strings.Fields(flags[1]), "aa") {
			t.Errorf("dig www.outside.test:\n%s", out)
		}
	})
	t.Run("RD=0 outside the zones is not forwarded", func(t *testing.T) {
		if got := status(s.dig(t, "www.outside.test", "+norec")); got != "REFUSED" {
			t.Errorf("dig +norec www.outside.test: %s, want REFUSED", got)
		}
	})
	raw := func(t *testing.T, m *dns.Msg) *dns.Msg {
		r, err := dns.Exchange(m, s.addr)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	t.Run("two OPT records are FORMERR", func(t *testing.T) {
		m := new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.Extra = append(m.Extra, m.Extra[0])
		if r := raw(t, m); r.Rcode != dns.RcodeFormatError {
			t.Errorf("got %s, want FORMERR", dns.RcodeToString[r.Rcode])
		}
	})
	t.Run("no question is FORMERR", func(t *testing.T) {
		m := new(dns.Msg)
		m.Id = dns.Id()
		if r := raw(t, m); r.Rcode != dns.RcodeFormatError {
			t.Errorf("got %s, want FORMERR", dns.RcodeToString[r.Rcode])
		}
	})
}

// TestAdditionalAddresses: an NS or SRV answer carries the addresses infrad knows of
// its targets, as dig shows them.
func TestAdditionalAddresses(t *testing.T) {
	testenv.Need(t, "dig")
	s := start(t, "")
	for _, tc := range []struct{ name, qtype, want string }{
		{"k8s.example.com", "NS", "ns.k8s.example.com.\t120\tIN\tA\t127.0.0.1"},
		{"_etcd-server-ssl._tcp.k8s.example.com", "SRV", "cp01.k8s.example.com.\t120\tIN\tA\t10.0.40.10"},
	} {
		if out := s.dig(t, tc.name, tc.qtype, "+noall", "+additional"); !strings.Contains(out, tc.want) {
			t.Errorf("dig %s %s: the additional section lacks %q:\n%s", tc.name, tc.qtype, tc.want, out)
		}
	}
}

// TestTCPPipelining: queries sent on one TCP connection without waiting for the
// answers (RFC 7766 §6.2.1.1) are each answered, on the same connection; one that
// waits for a slow forwarder does not hold up the zones' answers sent after it.
func TestTCPPipelining(t *testing.T) {
	// A port below the ephemeral range, free on UDP and TCP: a port the kernel picks
	// for UDP may be an outgoing TCP connection's (a clean-clone run failed so).
	pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	answer := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		<-release // answers once the test has read the zones' answers
		m := new(dns.Msg).SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
		w.WriteMsg(m)
	})
	// The upstream on UDP and TCP alike: forward asks over the client's protocol
	// (TCP here), and a refused TCP connection would be answered SERVFAIL at once.
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, slow := range []*dns.Server{{PacketConn: pc, Handler: answer}, {Listener: ln, Handler: answer}} {
		go slow.ActivateAndServe()
		t.Cleanup(func() { slow.Shutdown() })
	}
	s := start(t, fmt.Sprintf("  forwarders: [%q]", pc.LocalAddr()))
	c, err := dns.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	names := []string{"www.outside.test.", "cp01.k8s.example.com.", "cp02.k8s.example.com.", "nope.k8s.example.com.", "api.k8s.example.com."}
	want := map[uint16]string{}
	for _, name := range names {
		q := new(dns.Msg).SetQuestion(name, dns.TypeA)
		want[q.Id] = name
		if err := c.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range names {
		if i == len(names)-1 {
			close(release) // the zones' four answered while the forwarded one waited
		}
		r, err := c.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		if want[r.Id] != r.Question[0].Name {
			t.Errorf("reply %d answers %s, want %q", r.Id, r.Question[0].Name, want[r.Id])
		}
		if i < len(names)-1 && r.Question[0].Name == "www.outside.test." {
			t.Errorf("the forwarded answer came before the zones' ones: %s", r)
		}
		delete(want, r.Id)
	}
	if len(want) != 0 {
		t.Errorf("unanswered: %v", want)
	}
}

// TestTCPConnectionsPerClient: one client address holds at most
// maxTCPConnsPerClient connections, so it cannot take every one from the
// secondaries; another address still gets in, and a slot freed is taken again.
func TestTCPConnectionsPerClient(t *testing.T) {
	s := start(t, "")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	ask := func(c *dns.Conn) error {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if err := c.WriteMsg(new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA)); err != nil {
			return err
		}
		_, err := c.ReadMsg()
		return err
	}
	for range maxTCPConnsPerClient {
		c, err := dns.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := ask(c); err != nil {
			t.Fatalf("connection %d: %v", len(held), err)
		}
		held = append(held, c.Conn)
	}
	over, err := dns.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if err := ask(over); err == nil {
		t.Errorf("connection %d from one address was answered", maxTCPConnsPerClient+1)
	}
	other := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	oc, err := other.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close()
	if err := ask(&dns.Conn{Conn: oc}); err != nil {
		t.Errorf("another address: %v", err)
	}
	held[0].Close()
	testenv.WaitFor(t, "a freed slot taken again", func() bool {
		c, err := dns.Dial("tcp", s.addr)
		if err != nil {
			return false
		}
		defer c.Close()
		return ask(c) == nil
	})
}
