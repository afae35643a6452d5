package dns

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// TestReadPlain: only a plain query (QUERY, one question of class IN, at most an OPT
// of version 0, nothing after) may be answered from the cache, and its key ignores
// the name's case but not the type, EDNS or DO.
func TestReadPlain(t *testing.T) {
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	plain := new(dns.Msg).SetQuestion("Cp01.K8s.Example.COM.", dns.TypeA)
	withDO := new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA).SetEdns0(4096, true)
	cookie := new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA).SetEdns0(1232, false)
	cookie.IsEdns0().Option = append(cookie.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	version1 := new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA).SetEdns0(1232, false)
	version1.IsEdns0().SetVersion(1)
	signed := new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA).SetTsig("external-dns.", dns.HmacSHA256, 300, 0)
	chaos := new(dns.Msg).SetQuestion("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	update := new(dns.Msg).SetUpdate("k8s.example.com.")
	axfr := new(dns.Msg).SetAxfr("k8s.example.com.")
	response := new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA)
	response.Response = true
	trailing := append(pack(plain), 0)
	buf := make([]byte, 0, cacheKeyLen)
	for _, tc := range []struct {
		name   string
		b      []byte
		usable bool
		size   int
		do     bool
	}{
		{"plain", pack(plain), true, 512, false},
		{"EDNS with DO", pack(withDO), true, maxUDPSize, true},
		{"EDNS with a cookie", pack(cookie), true, maxUDPSize, false},
		{"EDNS version 1", pack(version1), false, 0, false},
		{"signed", pack(signed), false, 0, false},
		{"class CHAOS", pack(chaos), false, 0, false},
		{"an UPDATE", pack(update), false, 0, false},
		{"a transfer", pack(axfr), false, 0, false},
		{"a response", pack(response), false, 0, false},
		{"a byte after the message", trailing, false, 0, false},
		{"a header alone", pack(plain)[:12], false, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := readPlain(tc.b, buf)
			if q.usable != tc.usable || (q.usable && (q.size != tc.size || q.do != tc.do)) {
				t.Errorf("got usable %v, size %d, DO %v; want %v, %d, %v", q.usable, q.size, q.do, tc.usable, tc.size, tc.do)
			}
		})
	}
	a, b := readPlain(pack(plain), nil), readPlain(pack(new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA)), nil)
	if !bytes.Equal(a.key, b.key) {
		t.Errorf("the key depends on the name's case: %q and %q", a.key, b.key)
	}
	for _, other := range []*dns.Msg{new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeAAAA), withDO, cookie} {
		if c := readPlain(pack(other), nil); bytes.Equal(a.key, c.key) {
			t.Errorf("%v has the key of a plain A query", other.Question)
		}
	}
}

// TestCacheAnswersAsTheModel is the differential test of the answer cache: for random
// queries of a signed site (names that exist, wildcards, names that do not, the
// reverse zone; every type; the name's case; EDNS or not, its size, DO), the reply
// the front door gives from its cache is, byte for byte, the reply the whole path
// gives (with the query's ID and question, the same sections where the question's
// case makes the whole path compress otherwise); and after a change of the site, no
// answer of before is given.
func TestCacheAnswersAsTheModel(t *testing.T) {
	s := signedServer(t, "")
	h := &handler{svc: s.svc}
	d := &door{h: h, ctx: t.Context(), waiting: make(chan waiting, waitQueue)}
	r := rand.New(rand.NewPCG(1, 2))
	names := []string{"cp01.k8s.example.com.", "cp6.k8s.example.com.", "api.k8s.example.com.", "web.apps.k8s.example.com.",
		"registry.k8s.example.com.", "chain.k8s.example.com.", "k8s.example.com.", "nope.k8s.example.com.", "deep.sub.k8s.example.com.",
		"x.deep.sub.k8s.example.com.", "10.40.0.10.in-addr.arpa.", "99.40.0.10.in-addr.arpa.", "www.example.org.", "ns.k8s.example.com.",
		"_etcd-server-ssl._tcp.k8s.example.com."}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypePTR, dns.TypeCNAME, dns.TypeTXT, dns.TypeMX, dns.TypeSRV, dns.TypeNS,
		dns.TypeSOA, dns.TypeDNSKEY, dns.TypeDS, dns.TypeANY, dns.TypeNSEC, dns.TypeRRSIG}
	query := func() *dns.Msg {
		name := []byte(names[r.IntN(len(names))])
		for i := range name {
			if r.IntN(2) == 0 {
				name[i] = strings.ToUpper(string(name[i]))[0]
			}
		}
		q := new(dns.Msg).SetQuestion(string(name), types[r.IntN(len(types))])
		q.Id, q.RecursionDesired, q.CheckingDisabled = uint16(r.Uint32()), r.IntN(2) == 0, r.IntN(4) == 0
		if r.IntN(3) > 0 {
			q.SetEdns0(uint16(512+r.IntN(4096)), r.IntN(2) == 0)
		}
		return q
	}
	remote := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	key := make([]byte, 0, cacheKeyLen)
	front := func(b []byte) []byte { // the front door, the cache and all
		w := &replyWriter{remote: remote, batch: true, out: make([]byte, 0, maxUDPSize+maxTSIGLen)}
		if !d.serveUDP(b, w, key) {
			t.Fatalf("a query of the zones handed to the workers")
		}
		return w.out
	}
	whole := func(b []byte) []byte { // the whole path, no cache
		w := &replyWriter{remote: remote, batch: true, out: make([]byte, 0, maxUDPSize+maxTSIGLen)}
		if m, ok := h.read(b, w); ok {
			h.serveDNS(context.Background(), w, m)
		}
		return w.out
	}
	check := func(round string) (hits int) {
		for range 400 {
			q := query()
			b, err := q.Pack()
			if err != nil {
				t.Fatal(err)
			}
			cached := s.svc.cache.Load() != nil && s.svc.cache.Load().get(readPlain(b, nil).key) != nil
			got, want := front(b), whole(b)
			var g, w dns.Msg
			if g.Unpack(got) != nil || w.Unpack(want) != nil {
				t.Fatalf("%s: a reply that is no message", round)
			}
			if g.Id != q.Id || g.Question[0] != q.Question[0] || g.RecursionDesired != q.RecursionDesired || g.CheckingDisabled != q.CheckingDisabled {
				t.Fatalf("%s: the reply's header or question %v is not the query's %v", round, g.MsgHdr, q.Question[0])
			}
			// The same bytes, but where the question's case differs from the names'
			// in the answer: the whole path then compresses them otherwise.
			if !bytes.Equal(got, want) && (q.Question[0].Name == strings.ToLower(q.Question[0].Name) || !strings.EqualFold(g.String(), w.String())) {
				t.Fatalf("%s: %s %s (cached %v): the front door answered\n%s\nthe whole path\n%s", round, q.Question[0].Name, dns.TypeToString[q.Question[0].Qtype], cached, &g, &w)
			}
			if cached {
				hits++
			}
		}
		return hits
	}
	if hits := check("first"); hits < 100 {
		t.Errorf("%d of 400 queries answered from the cache: the cache keeps too little", hits)
	}
	// A change of the site: the cache of before answers nothing.
	if _, err := s.ipam.Apply(t.Context(), ipam.PutHost{Stamp: ipam.Stamp{At: s.clock.now()}, Create: true,
		Host: site.Host{Name: "web", IP: netip.MustParseAddr("10.0.40.50"), Owner: site.OwnerAPI}}); err != nil {
		t.Fatal(err)
	}
	names = append(names, "web.k8s.example.com.", "50.40.0.10.in-addr.arpa.")
	check("after a change")
	if got := fmt.Sprint(s.answersOf(t, "web.k8s.example.com.")); got != "[10.0.40.50]" {
		t.Errorf("the new host answers %s", got)
	}
}

// answersOf asks name's A over UDP, twice (the second from the cache), and returns
// the addresses of the second answer.
func (s *server) answersOf(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for range 2 {
		r, err := dns.Exchange(new(dns.Msg).SetQuestion(name, dns.TypeA), s.addr)
		if err != nil {
			t.Fatal(err)
		}
		out = nil
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				out = append(out, a.A.String())
			}
		}
	}
	return out
}

// FuzzCacheMatchesTheModel: for any query bytes, the front door's reply (from the
// answer cache once a first query has filled it) is the whole path's, as
// TestCacheAnswersAsTheModel checks for random well-formed queries.
func FuzzCacheMatchesTheModel(f *testing.F) {
	for _, q := range []*dns.Msg{
		new(dns.Msg).SetQuestion("cp01.k8s.example.com.", dns.TypeA),
		new(dns.Msg).SetQuestion("CP01.k8s.example.com.", dns.TypeA).SetEdns0(1232, true),
		new(dns.Msg).SetQuestion("nope.k8s.example.com.", dns.TypeAAAA).SetEdns0(512, false),
		new(dns.Msg).SetQuestion("k8s.example.com.", dns.TypeDNSKEY).SetEdns0(4096, true),
		new(dns.Msg).SetQuestion("10.40.0.10.in-addr.arpa.", dns.TypePTR),
	} {
		b, _ := q.Pack()
		f.Add(b)
	}
	m, site := sitetest.IPAM(f, []byte(strings.Replace(fmt.Sprintf(testSite, 53, ""), "  ttl: 120\n", "  ttl: 120\n  dnssec: true\n", 1)))
	h := &handler{svc: New(Options{Site: site, IPAM: m, Registry: prometheus.NewRegistry()})}
	h.svc.refreshKeys(f.Context())
	d := &door{h: h, ctx: f.Context(), waiting: make(chan waiting, waitQueue)}
	remote := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	f.Fuzz(func(t *testing.T, b []byte) {
		reply := func(front bool) []byte {
			w := &replyWriter{remote: remote, batch: true, out: make([]byte, 0, maxUDPSize+maxTSIGLen)}
			if front {
				d.serveUDP(bytes.Clone(b), w, make([]byte, 0, cacheKeyLen))
			} else if r, ok := h.read(bytes.Clone(b), w); ok && !h.waits(r, w) {
				h.serveDNS(t.Context(), w, r)
			}
			return w.out
		}
		first, second, want := reply(true), reply(true), reply(false)
		for _, got := range [][]byte{first, second} {
			var g, w dns.Msg
			if len(got) == 0 && len(want) == 0 {
				continue
			}
			if g.Unpack(got) != nil || w.Unpack(want) != nil {
				t.Fatalf("a reply that is no message: %x / %x", got, want)
			}
			if !bytes.Equal(got, want) && !strings.EqualFold(g.String(), w.String()) {
				t.Fatalf("the front door answered\n%s\nthe whole path\n%s", &g, &w)
			}
		}
	})
}
