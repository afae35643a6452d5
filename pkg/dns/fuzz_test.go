package dns

import (
	"fmt"
	"net"
	"strings"
	"testing"

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

// FuzzServe feeds the plugin's whole path any message, as CoreDNS hands it over (over
// UDP or TCP, its signature judged good or bad), the zones signed: none panics, and
// every reply packs.
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
	}
	m, site := sitetest.IPAM(f, fmt.Appendf(nil, testSite, 53, "  transfer_from: [127.0.0.0/8]\n  dnssec: true"))
	h := &handler{svc: New(Options{Site: site, IPAM: m, Registry: prometheus.NewRegistry()})}
	h.svc.refreshKeys(f.Context())
	f.Fuzz(func(t *testing.T, data []byte, how byte) {
		var r dns.Msg
		if r.Unpack(data) != nil {
			return
		}
		w := &fuzzWriter{t: t, tcp: how&1 == 1}
		if how&2 == 2 {
			w.status = dns.ErrSig
		}
		h.ServeDNS(t.Context(), w, &r)
	})
}

// fuzzWriter is a ResponseWriter that checks that what is written is a DNS message.
type fuzzWriter struct {
	t      *testing.T
	tcp    bool
	status error
}

func (w *fuzzWriter) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *fuzzWriter) RemoteAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (w *fuzzWriter) WriteMsg(m *dns.Msg) error {
	if _, err := m.Pack(); err != nil {
		w.t.Fatalf("a reply that does not pack: %v\n%s", err, m)
	}
	return nil
}
func (w *fuzzWriter) Write(b []byte) (int, error) {
	if err := new(dns.Msg).Unpack(b); err != nil {
		w.t.Fatalf("bytes written that are no message: %v", err)
	}
	return len(b), nil
}
func (w *fuzzWriter) Close() error        { return nil }
func (w *fuzzWriter) TsigStatus() error   { return w.status }
func (w *fuzzWriter) TsigTimersOnly(bool) {}
func (w *fuzzWriter) Hijack()             {}
