package dns

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/internal/sitetest"
)

// FuzzMessage feeds the answering and update parsing any message: none panics.
func FuzzMessage(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"cp01.k8s.example.com.", dns.TypeA}, {"x.apps.k8s.example.com.", dns.TypeANY}, {"chain.k8s.example.com.", dns.TypeA},
		{"10.40.0.10.in-addr.arpa.", dns.TypePTR}, {"nope.example.org.", dns.TypeTXT}} {
		m := new(dns.Msg).SetQuestion(q.name, q.qtype)
		b, _ := m.Pack()
		f.Add(b)
	}
	u := new(dns.Msg).SetUpdate("k8s.example.com.")
	rr, _ := dns.NewRR("acme.k8s.example.com. 60 IN TXT \"x\"")
	u.Insert([]dns.RR{rr})
	u.NameUsed([]dns.RR{rr})
	b, _ := u.Pack()
	f.Add(b)

	m, _ := sitetest.IPAM(f, fmt.Appendf(nil, testSite, 53, ""))
	v := &view{m: m.Model()}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r dns.Msg
		if r.Unpack(data) != nil || len(r.Question) != 1 {
			return
		}
		if r.Opcode == dns.OpcodeUpdate {
			prerequisites(r.Answer, strings.ToLower(r.Question[0].Name))
			updates(r.Ns, strings.ToLower(r.Question[0].Name))
			return
		}
		name := strings.ToLower(r.Question[0].Name)
		if zone := v.zoneOf(name); zone != "" {
			m := new(dns.Msg).SetReply(&r)
			v.answer(m, name, r.Question[0].Qtype, zone)
			if _, err := m.Pack(); err != nil {
				t.Fatalf("an answer that does not pack: %v", err)
			}
		}
	})
}

// FuzzServe feeds the front door's whole path any bytes, as a socket reads them (over
// UDP or TCP), the zones signed: none panics, and every reply is a DNS message.
func FuzzServe(f *testing.F) {
	for _, q := range []*dns.Msg{
		new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA),
		new(dns.Msg).SetAxfr("k8s.example.com."),
		new(dns.Msg).SetIxfr("k8s.example.com.", 1, "ns.k8s.example.com.", "hostmaster.k8s.example.com."),
		new(dns.Msg).SetQuestion("www.outside.test.", dns.TypeA).SetEdns0(1232, true),
		new(dns.Msg).SetQuestion("nope.k8s.example.com.", dns.TypeA).SetEdns0(1232, true),
		new(dns.Msg).SetQuestion("k8s.example.com.", dns.TypeDNSKEY).SetEdns0(1232, true),
		new(dns.Msg).SetQuestion("chain.k8s.example.com.", dns.TypeAAAA).SetEdns0(1232, true),
		new(dns.Msg).SetUpdate("k8s.example.com.").SetTsig("external-dns.", dns.HmacSHA256, 300, 0),
	} {
		b, _ := q.Pack()
		f.Add(b, byte(0))
		f.Add(b, byte(1))
	}
	m, site := sitetest.IPAM(f, fmt.Appendf(nil, testSite, 53, "  transfer_from: [127.0.0.0/8]\n  dnssec: true"))
	h := &handler{svc: New(Options{Site: site, IPAM: m, Registry: prometheus.NewRegistry()})}
	h.svc.refreshKeys(f.Context())
	local, remote := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	f.Fuzz(func(t *testing.T, data []byte, how byte) {
		w := &replyWriter{local: local, remote: remote, batch: true, out: make([]byte, 0, maxUDPSize), size: maxUDPSize}
		if how&1 == 1 {
			w = &replyWriter{local: local, remote: remote, tcp: &checkConn{t: t}}
		}
		if r, ok := h.read(data, w); ok {
			h.serveDNS(t.Context(), w, r)
		}
		if len(w.out) > 0 {
			if err := new(dns.Msg).Unpack(w.out); err != nil {
				t.Fatalf("a reply that is no message: %v", err)
			}
			if len(w.out) > maxUDPSize {
				t.Fatalf("a UDP reply of %d bytes", len(w.out))
			}
		}
	})
}

// checkConn is a TCP connection that checks that each reply written to it is a
// framed DNS message.
type checkConn struct {
	net.Conn
	t *testing.T
}

func (c *checkConn) SetWriteDeadline(time.Time) error { return nil }

func (c *checkConn) Write(b []byte) (int, error) {
	if len(b) < 2 || int(b[0])<<8|int(b[1]) != len(b)-2 {
		c.t.Fatalf("a reply framed wrong: %d bytes", len(b))
	}
	if err := new(dns.Msg).Unpack(b[2:]); err != nil {
		c.t.Fatalf("a reply that is no message: %v", err)
	}
	return len(b), nil
}
