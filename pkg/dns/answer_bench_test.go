package dns

import (
	"fmt"
	"net"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/internal/sitetest"
)

// BenchmarkAnswer times answering a host's A and its PTR from the model, as the
// front door does for each query the answer cache lacks (no network).
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

// BenchmarkSignedAnswer is BenchmarkAnswer with the zones signed, for a query with the
// DO bit: the signatures from the cache ("cached"), and a denial of a name never asked
// before, signed on the spot ("denial").
func BenchmarkSignedAnswer(b *testing.B) {
	m, site := sitetest.IPAM(b, fmt.Appendf(nil, testSite, 53, "  dnssec: true"))
	s := New(Options{Site: site, IPAM: m, Registry: prometheus.NewRegistry()})
	s.refreshKeys(b.Context())
	answer := func(name string, qtype uint16) *dns.Msg {
		v := s.view()
		out := new(dns.Msg)
		out.SetReply(new(dns.Msg).SetQuestion(name, qtype))
		v.answer(out, name, qtype, v.zoneOf(name))
		v.dnssec.signReply(&v, out, name, qtype)
		return out
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if out := answer("cp01.k8s.example.com.", dns.TypeA); len(out.Answer) != 2 {
				b.Fatalf("%v", out)
			}
		}
	})
	b.Run("denial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if out := answer(fmt.Sprintf("nx%d.k8s.example.com.", i), dns.TypeA); len(out.Ns) != 4 {
				b.Fatalf("%v", out)
			}
		}
	})
}

// BenchmarkCachedAnswer is the front door's path for a plain query the answer cache
// holds: from the query's bytes to the reply's, allocating nothing.
func BenchmarkCachedAnswer(b *testing.B) {
	m, site := sitetest.IPAM(b, fmt.Appendf(nil, testSite, 53, ""))
	h := &handler{svc: New(Options{Site: site, IPAM: m, Registry: prometheus.NewRegistry()})}
	d := &door{h: h, ctx: b.Context()}
	q, _ := new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA).SetEdns0(1232, false).Pack()
	remote := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	buf, key := make([]byte, 0, maxUDPSize), make([]byte, 0, cacheKeyLen)
	w := &replyWriter{remote: remote, batch: true, out: buf}
	d.serveUDP(q, w, key) // the miss that fills the cache
	b.ReportAllocs()
	for b.Loop() {
		*w = replyWriter{remote: remote, batch: true, out: buf}
		d.serveUDP(q, w, key)
	}
	if len(w.out) == 0 {
		b.Fatal("no answer")
	}
}
