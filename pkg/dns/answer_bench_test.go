package dns

import (
	"fmt"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/internal/sitetest"
)

// BenchmarkAnswer times answering a host's A and its PTR from the model, as the
// plugin does for each query (no network).
func BenchmarkAnswer(b *testing.B) {
	m, site := sitetest.IPAM(b, fmt.Appendf(nil, testSite, 53, ""))
	s := New(Options{Site: site, IPAM: m, Registry: prometheus.NewRegistry()})
	queries := []struct {
		name  string
		qtype uint16
	}{{"cp01.k8s.example.com.", dns.TypeA}, {"11.40.0.10.in-addr.arpa.", dns.TypePTR}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		q := queries[i%2]
		v := s.view()
		zone := v.zoneOf(q.name)
		r := new(dns.Msg).SetQuestion(q.name, q.qtype)
		out := new(dns.Msg)
		out.SetReply(r)
		v.answer(out, q.name, q.qtype, zone)
		if len(out.Answer) != 1 {
			b.Fatalf("%s: %v", q.name, out)
		}
	}
}
