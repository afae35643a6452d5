package dns

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

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
	v := &view{m: m.Model(), zones: new(zoneCache).of(m.Model()), settings: settings{ttl: 300, advertise: netip.MustParseAddr("127.0.0.1")}}
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
