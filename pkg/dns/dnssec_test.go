package dns

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
	"github.com/infrad/infrad/pkg/service"
	"github.com/infrad/infrad/pkg/site"
)

// clock is a clock the test moves.
type clock struct{ at atomic.Int64 }

func newClock(t time.Time) *clock    { c := &clock{}; c.set(t); return c }
func (c *clock) now() time.Time      { return time.Unix(0, c.at.Load()) }
func (c *clock) set(t time.Time)     { c.at.Store(t.UnixNano()) }
func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

// signedServer serves testSite, with further dns keys, with DNSSEC on: by a clock the
// test moves (s.clock, now at first), trusting it while s.synced holds (at first, it
// does).
func signedServer(t *testing.T, extra string) *server {
	t.Helper()
	port := testenv.FreePort(t)
	m, site := sitetest.IPAM(t, []byte(strings.Replace(fmt.Sprintf(testSite, port, extra), "  ttl: 120\n", "  ttl: 120\n  dnssec: true\n  transfer_from: [127.0.0.0/8]\n", 1)))
	s := &server{ipam: m, addr: fmt.Sprintf("127.0.0.1:%d", port), port: port, clock: newClock(time.Now()), synced: &atomic.Bool{}}
	s.synced.Store(true)
	s.svc = New(Options{Site: site, IPAM: m, Registry: prometheus.NewRegistry(), Coalesce: time.Millisecond, Now: s.clock.now,
		Synced: func() (bool, string) { return s.synced.Load(), "no source (test)" }})
	if err := s.svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.svc.Stop(context.Background()) })
	return s
}

// ask sends a query with the DO bit and returns the reply.
func (s *server) ask(t *testing.T, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg).SetQuestion(name, qtype)
	q.SetEdns0(1232, true)
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(q, s.addr)
	if err != nil {
		t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

// validator checks replies as a validating resolver does, against a zone's DNSKEY set.
type validator struct {
	t    *testing.T
	keys map[uint16]*dns.DNSKEY
}

// trust reads zone's DNSKEY set from s, checks that its KSK signed it, and trusts it.
func trust(t *testing.T, s *server, zone string, at time.Time) *validator {
	t.Helper()
	r := s.ask(t, zone, dns.TypeDNSKEY)
	v := &validator{t: t, keys: map[uint16]*dns.DNSKEY{}}
	var set []dns.RR
	for _, rr := range r.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok {
			v.keys[k.KeyTag()] = k
			set = append(set, k)
		}
	}
	if len(set) < 2 {
		t.Fatalf("%s has %d DNSKEYs, want a KSK and a ZSK at least:\n%s", zone, len(set), r)
	}
	for _, rr := range r.Answer {
		if sig, ok := rr.(*dns.RRSIG); ok {
			if k := v.keys[sig.KeyTag]; k == nil || k.Flags&dns.SEP == 0 {
				t.Errorf("%s's DNSKEY set is signed by key %d, not its KSK", zone, sig.KeyTag)
			}
		}
	}
	v.check(r, at)
	return v
}

// check fails the test unless every RRset in r's answer and authority sections is
// signed by one of v's keys, validly at at.
func (v *validator) check(r *dns.Msg, at time.Time) {
	v.t.Helper()
	for _, section := range [][]dns.RR{r.Answer, r.Ns} {
		sets := map[[2]string][]dns.RR{}
		sigs := map[[2]string]*dns.RRSIG{}
		for _, rr := range section {
			h := rr.Header()
			if sig, ok := rr.(*dns.RRSIG); ok {
				sigs[[2]string{h.Name, dns.TypeToString[sig.TypeCovered]}] = sig
				continue
			}
			k := [2]string{h.Name, dns.TypeToString[h.Rrtype]}
			sets[k] = append(sets[k], rr)
		}
		for k, set := range sets {
			sig := sigs[k]
			switch {
			case sig == nil:
				v.t.Errorf("%s %s is not signed:\n%s", k[0], k[1], r)
			case v.keys[sig.KeyTag] == nil:
				v.t.Errorf("%s %s is signed by key %d, which is not in the DNSKEY set trusted", k[0], k[1], sig.KeyTag)
			case !sig.ValidityPeriod(at):
				v.t.Errorf("%s %s's signature is not valid at %s", k[0], k[1], at)
			default:
				if err := sig.Verify(v.keys[sig.KeyTag], set); err != nil {
					v.t.Errorf("%s %s's signature does not verify: %v", k[0], k[1], err)
				}
			}
		}
	}
}

func TestSignedAnswersVerify(t *testing.T) {
	s := signedServer(t, "")
	v := trust(t, s, "k8s.example.com.", s.clock.now())
	for _, q := range []struct {
		name  string
		qtype uint16
		want  string // in the answer
	}{
		{"cp01.k8s.example.com.", dns.TypeA, "10.0.40.10"},
		{"api.k8s.example.com.", dns.TypeA, "10.0.40.100"},
		{"anything.apps.k8s.example.com.", dns.TypeA, "10.0.40.101"}, // a wildcard, signed as the name asked
		{"chain.k8s.example.com.", dns.TypeA, "10.0.40.10"},          // CNAME → CNAME → A
		{"k8s.example.com.", dns.TypeMX, "mail.k8s.example.com."},
		{"k8s.example.com.", dns.TypeSOA, "hostmaster"},
	} {
		r := s.ask(t, q.name, q.qtype)
		if r.Rcode != dns.RcodeSuccess || !strings.Contains(fmt.Sprint(r.Answer), q.want) {
			t.Errorf("%s %s: want %s in the answer:\n%s", q.name, dns.TypeToString[q.qtype], q.want, r)
		}
		v.check(r, s.clock.now())
	}

	// Denial: one NSEC at the name asked, whose types say what is there.
	for _, q := range []struct {
		name       string
		qtype      uint16
		has, hasnt []uint16
	}{
		{"nope.k8s.example.com.", dns.TypeA, []uint16{typeNXNAME}, []uint16{dns.TypeA}},
		{"cp01.k8s.example.com.", dns.TypeAAAA, []uint16{dns.TypeA}, []uint16{dns.TypeAAAA, typeNXNAME}},
		{"deep.sub.k8s.example.com.", dns.TypeTXT, nil, []uint16{dns.TypeTXT, typeNXNAME}}, // an empty non-terminal
	} {
		r := s.ask(t, q.name, q.qtype)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
			t.Errorf("%s %s: want NOERROR, no answer (RFC 9824):\n%s", q.name, dns.TypeToString[q.qtype], r)
		}
		var nsec *dns.NSEC
		for _, rr := range r.Ns {
			if n, ok := rr.(*dns.NSEC); ok {
				nsec = n
			}
		}
		if nsec == nil || nsec.Hdr.Name != q.name || nsec.NextDomain != "\\000."+q.name {
			t.Fatalf("%s %s: want an NSEC from the name to \\000.name:\n%s", q.name, dns.TypeToString[q.qtype], r)
		}
		for _, typ := range q.has {
			if !slices.Contains(nsec.TypeBitMap, typ) {
				t.Errorf("%s: the NSEC lacks type %d: %v", q.name, typ, nsec)
			}
		}
		for _, typ := range q.hasnt {
			if slices.Contains(nsec.TypeBitMap, typ) {
				t.Errorf("%s: the NSEC has type %d: %v", q.name, typ, nsec)
			}
		}
		v.check(r, s.clock.now())
	}

	// A name as long as a name can be has no room for a successor: its NSEC covers it
	// alone, and the reply still packs and verifies.
	long := strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 45) + ".k8s.example.com."
	if r := s.ask(t, long, dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("a longest name: want NOERROR, no answer:\n%s", r)
	} else {
		v.check(r, s.clock.now())
	}

	// Without the DO bit, nothing changes: NXDOMAIN, no signatures.
	r, err := dns.Exchange(new(dns.Msg).SetQuestion("nope.k8s.example.com.", dns.TypeA), s.addr)
	if err != nil || r.Rcode != dns.RcodeNameError || strings.Contains(r.String(), "RRSIG") {
		t.Errorf("a query without DO: want a plain NXDOMAIN: %v\n%s", err, r)
	}

	// The reverse zone and the extra zone are signed with the same keys.
	for _, z := range []string{"40.0.10.in-addr.arpa.", "example.org."} {
		zv := trust(t, s, z, s.clock.now())
		zv.check(s.ask(t, z, dns.TypeSOA), s.clock.now())
	}
	trust(t, s, "40.0.10.in-addr.arpa.", s.clock.now()).check(s.ask(t, "10.40.0.10.in-addr.arpa.", dns.TypePTR), s.clock.now())
}

// TestSignedTransfer checks an AXFR of a signed zone: every RRset of the zone's own
// signed, the NSEC chain closed through every name in canonical order.
func TestSignedTransfer(t *testing.T) {
	s := signedServer(t, "")
	v := trust(t, s, "k8s.example.com.", s.clock.now())
	tr := new(dns.Transfer)
	envs, err := tr.In(new(dns.Msg).SetAxfr("k8s.example.com."), s.addr)
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	for e := range envs {
		if e.Error != nil {
			t.Fatal(e.Error)
		}
		m.Answer = append(m.Answer, e.RR...)
	}
	m.Answer = m.Answer[:len(m.Answer)-1] // the closing SOA
	// check wants each RRset's RRs together: sort them so.
	slices.SortStableFunc(m.Answer, func(a, b dns.RR) int {
		return strings.Compare(a.Header().Name+dns.TypeToString[a.Header().Rrtype], b.Header().Name+dns.TypeToString[b.Header().Rrtype])
	})
	v.check(m, s.clock.now())
	next := map[string]string{}
	for _, rr := range m.Answer {
		if n, ok := rr.(*dns.NSEC); ok {
			next[n.Hdr.Name] = n.NextDomain
		}
	}
	name, seen := "k8s.example.com.", 0
	for {
		nx, ok := next[name]
		if !ok {
			t.Fatalf("no NSEC at %s", name)
		}
		if seen++; nx == "k8s.example.com." {
			break
		}
		if canonicalCompare(name, nx) >= 0 {
			t.Errorf("the NSEC chain goes back from %s to %s", name, nx)
		}
		name = nx
	}
	if seen != len(next) {
		t.Errorf("the NSEC chain visits %d names of %d", seen, len(next))
	}
	if !slices.ContainsFunc(m.Answer, func(rr dns.RR) bool { return strings.HasPrefix(rr.Header().Name, "x.deep.sub.") }) {
		t.Errorf("the transfer lacks x.deep.sub")
	}
}

// TestZSKRolloverUnderAMovedClock moves the clock forward twelve hours at a time for
// 80 days. At each step a resolver that trusted the DNSKEY set a step before, or one
// holding answers from a step before, still validates: a new ZSK is published before
// it signs, and an old one stays until its signatures are gone. At each step where
// the DNSKEY set changed, Unbound, validating by the moved clock, says ad too.
func TestZSKRolloverUnderAMovedClock(t *testing.T) {
	s := signedServer(t, "")
	ctx := t.Context()
	zone := "k8s.example.com."
	before := trust(t, s, zone, s.clock.now())
	held := s.ask(t, "cp01.k8s.example.com.", dns.TypeA)
	signers := map[uint16]bool{}
	maxKeys, unbounds := 0, 0
	for step := range 160 {
		s.clock.add(12 * time.Hour)
		s.svc.refreshKeys(ctx)
		now := s.clock.now()
		r := s.ask(t, "cp01.k8s.example.com.", dns.TypeA)
		before.check(r, now) // signed by a key the last step's DNSKEY set had
		after := trust(t, s, zone, now)
		after.check(held, now) // the last step's answers verify against the DNSKEY set of now
		for _, rr := range r.Answer {
			if sig, ok := rr.(*dns.RRSIG); ok {
				signers[sig.KeyTag] = true
			}
		}
		maxKeys = max(maxKeys, len(after.keys))
		if len(after.keys) != len(before.keys) && unbounds < 8 {
			unbounds++
			port := testenv.Unbound(t, "127.0.0.1@"+fmt.Sprint(s.port), []string{zone}, anchors(t, s), now)
			if r := testenv.Resolve(t, port, "cp01.k8s.example.com.", dns.TypeA); !r.AuthenticatedData {
				t.Errorf("Unbound at %s, with %d keys published: no ad:\n%s", now.Format(time.DateTime), len(after.keys), r)
			}
		}
		if t.Failed() {
			t.Fatalf("step %d (%s): validation broke", step, now.Format(time.DateTime))
		}
		before, held = after, r
	}
	if len(signers) < 3 {
		t.Errorf("in 80 days %d ZSKs signed, want at least 3 (a roll every %s)", len(signers), zskLifetime)
	}
	if unbounds < 4 {
		t.Errorf("Unbound checked %d changes of the DNSKEY set, want 4 or more", unbounds)
	}
	if len(before.keys) > 3 || maxKeys < 3 {
		t.Errorf("the DNSKEY set held at most %d keys and ends with %d: want 3 during a roll, and the old ZSKs removed", maxKeys, len(before.keys))
	}
}

// TestSigningPausesWithoutTrustedTime: while the clock is not trusted, no signature is
// made, no key rolled, and the service says so; the signatures made before are served.
func TestSigningPausesWithoutTrustedTime(t *testing.T) {
	s := signedServer(t, "")
	v := trust(t, s, "k8s.example.com.", s.clock.now())
	v.check(s.ask(t, "cp01.k8s.example.com.", dns.TypeA), s.clock.now())
	s.synced.Store(false)
	if h := s.svc.Health(); h.State != service.StateDegraded || !strings.Contains(h.LastError, "signing is paused") {
		t.Errorf("health while the clock is untrusted: %+v", h)
	}
	v.check(s.ask(t, "cp01.k8s.example.com.", dns.TypeA), s.clock.now()) // kept
	missing := testutil.ToFloat64(s.svc.metrics.sigsMissing)
	r := s.ask(t, "cp02.k8s.example.com.", dns.TypeA) // never signed
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("an answer while signing is paused: want the address alone:\n%s", r)
	}
	if n := testutil.ToFloat64(s.svc.metrics.sigsMissing) - missing; n != 1 {
		t.Errorf("infrad_dnssec_signatures_total{result=missing} rose by %v, want 1", n)
	}
	ring, _ := s.ipam.Keyring(ringName)
	s.clock.add(40 * 24 * time.Hour)
	s.svc.refreshKeys(t.Context())
	if after, _ := s.ipam.Keyring(ringName); string(after) != string(ring) {
		t.Errorf("the key ring changed while the clock was untrusted")
	}
	s.synced.Store(true)
	if h := s.svc.Health(); h.State == service.StateDegraded {
		t.Errorf("health once the clock is trusted again: %+v", h)
	}
}

// TestKeyRingRace has two services on one store find the ring empty at once: one
// ring wins, and both sign with it.
func TestKeyRingRace(t *testing.T) {
	for round := range 10 {
		port := testenv.FreePort(t)
		m, site := sitetest.IPAM(t, []byte(strings.Replace(fmt.Sprintf(testSite, port, ""), "  ttl: 120\n", "  ttl: 120\n  dnssec: true\n", 1)))
		var svcs [2]*Service
		for i := range svcs {
			svcs[i] = New(Options{Site: site, IPAM: m, Registry: prometheus.NewRegistry()})
		}
		var wg sync.WaitGroup
		for _, svc := range svcs {
			wg.Go(func() { svc.refreshKeys(t.Context()) })
		}
		wg.Wait()
		a, b := svcs[0].DNSSEC(), svcs[1].DNSSEC()
		if len(a.DS) == 0 || !slices.Equal(a.DS, b.DS) || fmt.Sprint(a.Keys) != fmt.Sprint(b.Keys) {
			t.Fatalf("round %d: the two services hold different keys:\n%+v\n%+v", round, a, b)
		}
	}
}

// TestSignedAnswersUnderWritesAndRolls: readers ask, with DO, for hosts as they are
// made, while the clock moves and the keys roll; each host is answered, signed, as
// soon as its write returns, and every signature verifies against a DNSKEY set
// published before the query.
func TestSignedAnswersUnderWritesAndRolls(t *testing.T) {
	s := signedServer(t, "")
	zone := "k8s.example.com."
	var mu sync.Mutex
	published := trust(t, s, zone, s.clock.now()).keys // every key published so far
	keys := func() map[uint16]*dns.DNSKEY {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(published)
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				v := &validator{t: t, keys: keys()}
				v.check(s.ask(t, "cp01.k8s.example.com.", dns.TypeA), s.clock.now())
				v.check(s.ask(t, fmt.Sprintf("w%d.k8s.example.com.", i%50), dns.TypeA), s.clock.now())
			}
		})
	}
	for i := range 50 {
		if i%5 == 4 { // a day on: now and then the ZSK rolls, and its successor is published first
			s.clock.add(24 * time.Hour)
			s.svc.refreshKeys(t.Context())
			next := trust(t, s, zone, s.clock.now()).keys
			mu.Lock()
			maps.Copy(published, next)
			mu.Unlock()
		}
		if _, err := s.ipam.CreateHost(t.Context(), site.HostSpec{Name: fmt.Sprintf("w%d", i), IP: fmt.Sprintf("10.0.40.%d", 30+i)}); err != nil {
			t.Fatal(err)
		}
		r := s.ask(t, fmt.Sprintf("w%d.k8s.example.com.", i), dns.TypeA)
		if len(r.Answer) != 2 {
			t.Fatalf("w%d, asked as its write returned: want its address and signature:\n%s", i, r)
		}
		(&validator{t: t, keys: keys()}).check(r, s.clock.now())
		if t.Failed() {
			break
		}
	}
	close(stop)
	readers.Wait()
}

// TestReloadTurnsSigningOnAndOff: a site file reloaded with dns.dnssec on signs at
// once (the keys made then). Turned off again, the zones stay signed, with a delete
// CDS and CDNSKEY (RFC 8078), until the parent's DS is said gone and that has had
// time to reach every resolver; then they are unsigned, under a new serial.
func TestReloadTurnsSigningOnAndOff(t *testing.T) {
	s := start(t, "")
	if r := s.ask(t, "cp01.k8s.example.com.", dns.TypeA); len(r.Answer) != 1 {
		t.Fatalf("unsigned: want the address alone:\n%s", r)
	}
	reload := func(on bool) {
		t.Helper()
		yaml := strings.Replace(fmt.Sprintf(testSite, s.port, ""), "  ttl: 120\n", fmt.Sprintf("  ttl: 120\n  dnssec: %v\n", on), 1)
		site, err := config.Parse("site.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.svc.Reload(site); err != nil {
			t.Fatal(err)
		}
	}
	reload(true)
	trust(t, s, "k8s.example.com.", time.Now()).check(s.ask(t, "cp01.k8s.example.com.", dns.TypeA), time.Now())
	if r := s.ask(t, "k8s.example.com.", dns.TypeCDS); len(r.Answer) != 0 {
		t.Errorf("a CDS with no roll under way:\n%s", r)
	}
	reload(false)
	s.svc.refreshKeys(t.Context())
	v := trust(t, s, "k8s.example.com.", time.Now())
	v.check(s.ask(t, "cp01.k8s.example.com.", dns.TypeA), time.Now())
	for _, q := range []uint16{dns.TypeCDS, dns.TypeCDNSKEY} {
		r := s.ask(t, "k8s.example.com.", q)
		want := map[uint16]string{dns.TypeCDS: "0 0 0 00", dns.TypeCDNSKEY: "0 3 0 AA=="}[q]
		if len(r.Answer) != 2 || !strings.HasSuffix(r.Answer[0].String(), want) {
			t.Errorf("signing withdrawn: want the delete %s (%s), signed:\n%s", dns.TypeToString[q], want, r)
		}
		v.check(r, time.Now())
	}
	if st := s.svc.DNSSEC(); st.Withdraw == nil || st.Enabled {
		t.Errorf("the status of a withdrawal: %+v", st)
	}
	if err := s.svc.ConfirmDS(t.Context()); err != nil {
		t.Fatal(err)
	}
	serial := s.ipam.Model().Serial()
	if r := s.ask(t, "cp01.k8s.example.com.", dns.TypeA); len(r.Answer) != 2 {
		t.Errorf("the DS just gone: want the answer still signed, for resolvers that hold the DS:\n%s", r)
	}
	s.svc.signer.now = func() time.Time { return time.Now().Add(dsWait + time.Minute) }
	s.svc.refreshKeys(t.Context())
	if r := s.ask(t, "cp01.k8s.example.com.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("signing withdrawn and the DS gone: want the address alone:\n%s", r)
	}
	if got := s.ipam.Model().Serial(); got == serial {
		t.Errorf("the zones went unsigned under the same serial %d", got)
	}
}

// TestKSKRollUnderUnbound rolls the KSK by command, with a clock the test moves in
// half days: Unbound trusting the old DS validates at every step until the old KSK
// leaves, Unbound trusting the new DS from the step its CDS is published; the CDS and
// CDNSKEY name the new key; the old key leaves dsWait after the DS is said changed.
func TestKSKRollUnderUnbound(t *testing.T) {
	testenv.Need(t, "unbound")
	s := signedServer(t, "")
	ctx := t.Context()
	oldDS := anchors(t, s)
	if err := s.svc.RollKSK(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.svc.RollKSK(ctx); err == nil {
		t.Error("a second roll under way was started")
	}
	validates := func(anchors []string, at time.Time) bool {
		port := testenv.Unbound(t, "127.0.0.1@"+fmt.Sprint(s.port), siteZones3, anchors, at)
		r := testenv.Resolve(t, port, "cp01.k8s.example.com.", dns.TypeA)
		p := testenv.Resolve(t, port, "10.40.0.10.in-addr.arpa.", dns.TypePTR)
		return r.AuthenticatedData && p.AuthenticatedData
	}
	var newDS []string
	stages := []string{}
	serial := s.ipam.Model().Serial()
	for step := range 14 {
		now := s.clock.now()
		st := s.svc.DNSSEC()
		if len(stages) == 0 || stages[len(stages)-1] != st.KSK.Stage {
			stages = append(stages, st.KSK.Stage)
			// What the zones serve changes when the CDS appears and when the old KSK
			// leaves (the DS seen changes only the status).
			if got := s.ipam.Model().Serial(); got == serial && (st.KSK.Stage == "cds" || st.KSK.Stage == "steady") {
				t.Errorf("step %d: the roll went to %s under the same serial", step, st.KSK.Stage)
			}
		}
		serial = s.ipam.Model().Serial()
		keys := trust(t, s, "k8s.example.com.", now)
		keys.check(s.ask(t, "cp01.k8s.example.com.", dns.TypeA), now)
		cds := s.ask(t, "k8s.example.com.", dns.TypeCDS)
		switch st.KSK.Stage {
		case "published":
			if !validates(oldDS, now) {
				t.Errorf("step %d (%s, published): Unbound with the old DS does not validate", step, now)
			}
			if len(cds.Answer) != 0 {
				t.Errorf("step %d: a CDS before the new DNSKEY set has reached every resolver:\n%s", step, cds)
			}
		case "cds", "retiring":
			if newDS == nil {
				newDS = st.DS
				if slices.Equal(newDS, oldDS) {
					t.Fatalf("the DS asked for is the old one: %v", newDS)
				}
				if !slices.ContainsFunc(cds.Answer, func(rr dns.RR) bool {
					c, ok := rr.(*dns.CDS)
					return ok && c.KeyTag == st.KSK.New && slices.ContainsFunc(newDS, func(ds string) bool {
						return strings.HasPrefix(ds, "k8s.example.com.") && strings.HasSuffix(ds, strings.ToUpper(c.Digest))
					})
				}) {
					t.Errorf("the CDS does not name the new KSK %d by the DS asked for %v:\n%s", st.KSK.New, newDS, cds)
				}
				cdnskey := s.ask(t, "k8s.example.com.", dns.TypeCDNSKEY)
				if len(cdnskey.Answer) != 2 || cdnskey.Answer[0].(*dns.CDNSKEY).KeyTag() != st.KSK.New {
					t.Errorf("the CDNSKEY is not the new KSK %d:\n%s", st.KSK.New, cdnskey)
				}
				keys.check(cdnskey, now)
				keys.check(cds, now)
			}
			if !validates(oldDS, now) {
				t.Errorf("step %d (%s): Unbound with the old DS does not validate while the old KSK is in the DNSKEY set", step, st.KSK.Stage)
			}
			if !validates(newDS, now) {
				t.Errorf("step %d (%s): Unbound with the new DS does not validate", step, st.KSK.Stage)
			}
			if st.KSK.Stage == "cds" {
				if err := s.svc.ConfirmDS(ctx); err != nil {
					t.Fatal(err)
				}
			}
		case "steady":
			if newDS == nil {
				t.Fatalf("step %d: the roll ended before its CDS was published", step)
			}
			if !validates(newDS, now) {
				t.Errorf("step %d (steady): Unbound with the new DS does not validate", step)
			}
			if validates(oldDS, now) {
				t.Errorf("step %d (steady): Unbound with the old DS still validates: the old KSK did not leave", step)
			}
			if len(cds.Answer) != 0 {
				t.Errorf("step %d: a CDS after the roll:\n%s", step, cds)
			}
		}
		if t.Failed() {
			t.Fatalf("stopped at step %d", step)
		}
		s.clock.add(12 * time.Hour)
		s.svc.refreshKeys(ctx)
	}
	if want := []string{"published", "cds", "retiring", "steady"}; !slices.Equal(stages, want) {
		t.Errorf("the roll went through %v, want %v", stages, want)
	}
}

// TestResignOnceAcrossBoxes: two boxes of one site, their clocks two seconds apart,
// both keep the signing time: it moves once when it is due, not back and forth
// between their clocks.
func TestResignOnceAcrossBoxes(t *testing.T) {
	s := signedServer(t, "")
	other := newClock(s.clock.now().Add(-2 * time.Second))
	site, err := config.Parse("site.yaml", []byte(strings.Replace(fmt.Sprintf(testSite, testenv.FreePort(t), ""), "  ttl: 120\n", "  ttl: 120\n  dnssec: true\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	b := New(Options{Site: site, IPAM: s.ipam, Registry: prometheus.NewRegistry(), Now: other.now}) // not started: its keeper alone
	keep := func() {                                                                                // both keepers, several rounds, in either order
		for range 5 {
			s.svc.refreshKeys(t.Context())
			b.refreshKeys(t.Context())
		}
	}
	serial := s.ipam.Model().Serial()
	keep()
	if got := s.ipam.Model().Serial(); got != serial {
		t.Errorf("two keepers a little apart moved the signing time (serial %d, was %d)", got, serial)
	}
	s.clock.add(sigRefresh)
	other.add(sigRefresh)
	b.refreshKeys(t.Context()) // the box behind first
	keep()
	at := s.ipam.Model().SignedAt()
	if got := s.ipam.Model().Serial(); got == serial || at.Before(other.now().Round(0).UTC()) || at.After(s.clock.now()) {
		t.Errorf("after %s the signing time is %s (serial %d, was %d), want one of the two clocks' now", sigRefresh, at, got, serial)
	}
	moved := s.ipam.Model().Serial()
	keep()
	if got := s.ipam.Model().Serial(); got != moved {
		t.Errorf("the signing time kept moving: serial %d, then %d", moved, got)
	}
}

// TestKSKRollPlan: dns.dnssec_ksk rolls the KSK once it has signed that long; the
// parent's DS cannot be said changed before the CDS asks for it; the old KSK leaves
// dsWait after it is, and the next roll waits for the one under way.
func TestKSKRollPlan(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	life := 365 * 24 * time.Hour
	r, _, err := planKeys(signingKeys{}, t0, life, t0)
	if err != nil {
		t.Fatal(err)
	}
	ksks := func(r signingKeys) int {
		return len(slices.DeleteFunc(slices.Clone(r.Keys), func(k signingKey) bool { return !k.KSK }))
	}
	if r2, _, _ := planKeys(r, t0.Add(life-time.Hour), life, t0); ksks(r2) != 1 {
		t.Errorf("a roll before the KSK's life is up: %d KSKs", ksks(r2))
	}
	at := t0.Add(life)
	r, changed, err := planKeys(r, at, life, at)
	if err != nil || !changed || ksks(r) != 2 || !rolling(r.Keys, at) {
		t.Fatalf("the KSK's life is up: %d KSKs, changed %v, err %v", ksks(r), changed, err)
	}
	if _, err := startRoll(r, at); !errors.Is(err, errRolling) {
		t.Errorf("a second roll: got %v, want errRolling", err)
	}
	if _, err := confirmDS(r, at.Add(time.Hour)); err == nil {
		t.Error("the DS said changed before the CDS asked for it")
	}
	seen := at.Add(kskPropagation + time.Hour)
	r, err = confirmDS(r, seen)
	if err != nil {
		t.Fatal(err)
	}
	after := seen.Add(dsWait)
	if r2, _, _ := planKeys(r, after, life, seen); ksks(r2) != 2 {
		t.Errorf("the old KSK left the ring before the zones were signed past its removal")
	}
	if r2, _, _ := planKeys(r, after, life, after); ksks(r2) != 1 || rolling(r2.Keys, after) {
		t.Errorf("dsWait after the DS changed: %d KSKs, want the new one alone", ksks(r2))
	}
}

// TestEarlierRingIsLeftAlone: the keys an earlier build left when its site stopped
// signing (a ring without Signing) are not taken for a signed zone to withdraw: they
// sign nothing, and no delete CDS is published; this build's ring, switched off, is
// withdrawn.
func TestEarlierRingIsLeftAlone(t *testing.T) {
	now := time.Now()
	r, _, err := planKeys(signingKeys{}, now, 0, now)
	if err != nil || !r.Signing {
		t.Fatalf("a ring this build plans: signing %v, err %v", r.Signing, err)
	}
	earlier := r
	earlier.Signing = false
	if next, changed := planWithdraw(earlier, now); changed || next.Withdraw != nil {
		t.Errorf("an earlier build's ring, signing off: withdrawn (%+v)", next.Withdraw)
	}
	ks, err := parseKeys(earlier)
	if err != nil {
		t.Fatal(err)
	}
	if ks.signs(now, false) || len(ks.cds("k8s.example.com.", 300, now)) != 0 {
		t.Error("an earlier build's ring, signing off: the zones signed, or a CDS")
	}
	if next, changed := planWithdraw(r, now); !changed || next.Withdraw == nil {
		t.Error("this build's ring, signing switched off: not withdrawn")
	}
}
