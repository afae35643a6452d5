package dns

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	_ "github.com/coredns/coredns/plugin/bind" // the plugins the Corefile uses, and no others
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/forward"
	"github.com/miekg/dns"
)

const pluginName = "infrad"

// directives is the plugin chain, in order; the Corefile uses only these. infrad's
// plugin comes first and does the rest itself (TSIG, transfers, answers): CoreDNS
// starts a goroutine per query, and each plugin on the way deepens its stack, whose
// growth cost a fifth of the queries a second when four plugins stood in front.
var directives = []string{"bind", pluginName, "cache", "forward"}

// CoreDNS keeps its plugins and directive list in package state, so this file does too:
// the registration happens once, and each Corefile names its Service by an id.
var (
	registerOnce sync.Once
	services     sync.Map // id → *Service
)

func register() {
	registerOnce.Do(func() {
		plugin.Register(pluginName, setup)
		if err := dnsserver.SetDirectives(directives); err != nil {
			panic("dns: " + err.Error())
		}
		caddy.Quiet, dnsserver.Quiet = true, true
	})
}

// setup reads "infrad <id>" and puts the Service's handler into the server block, with
// the TSIG keys the server verifies and signs with.
func setup(c *caddy.Controller) error {
	c.Next()
	if !c.NextArg() {
		return plugin.Error(pluginName, c.ArgErr())
	}
	v, ok := services.Load(c.Val())
	if !ok {
		return plugin.Error(pluginName, c.Errf("no service %q", c.Val()))
	}
	svc := v.(*Service)
	cfg := dnsserver.GetConfig(c)
	cfg.AllowOpcode(dns.OpcodeUpdate) // CoreDNS answers NOTIMP to opcodes no plugin asked for
	cfg.TsigSecret = svc.cfg.Load().tsig.secrets()
	cfg.AddPlugin(func(next plugin.Handler) plugin.Handler { return &handler{svc: svc, next: next} })
	return nil
}

// handler is the plugin in one server block. It answers every name in our zones from
// the current snapshot; other names go on to cache and forward for clients that may
// recurse, and are REFUSED for the rest: infrad is never an open resolver.
type handler struct {
	svc  *Service
	next plugin.Handler // cache → forward; nil without forwarders
}

func (h *handler) Name() string { return pluginName }

// maxGoroutines bounds the queries waiting for an answer, by the process's goroutines
// less those other services hold for their clients (Options.Held: API and CA
// connections, DHCP REQUESTs waiting for their commits). CoreDNS's UDP server
// starts a goroutine for every packet it reads and has no bound of its own: when
// queries come faster than they are answered, the goroutines waiting to run pile up
// (their stacks held 229 MB after a flood from 300,000 sources). Past the bound a
// query is dropped as soon as it runs, which costs far less than an answer, so the
// pile drains. The count includes goroutines not yet started, which a count of DNS's
// own queries could not see. At 4,096 a flood from a million sources held 77 MB above
// idle; at 2,048, 52 (bench/flood.sh), room enough for dnsperf's 1,024 queries in
// flight.
const maxGoroutines = 2048

// growStack grows the query's goroutine's stack once, here, where it is shallow:
// CoreDNS starts each query's goroutine with a small stack, which grew once in
// miekg/dns's unpacking and again deep in the model's lookups, each time copying every
// frame above (together a fifth of the CPU in a profile under dnsperf; the second
// growth is the one this saves). bench/dns.sh, alternating builds: 5 to
// 13% more queries a second. Not when many queries wait: the runtime starts new
// goroutines with the stack its goroutines used on average, and a flood of queries
// with grown stacks held 111 MB above idle against 52.
//
//go:noinline
func growStack() byte {
	var frame [24 << 10]byte
	frame[len(frame)-1] = 1
	return frame[stackProbe]
}

var stackProbe = 0 // read by growStack, so that its frame is not optimised away

func (h *handler) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	switch n := runtime.NumGoroutine() - h.svc.held.Count(); {
	case n > maxGoroutines:
		h.svc.metrics.shed.Inc()
		return dns.RcodeSuccess, nil // dropped: the client asks again
	case n < maxGoroutines/8:
		growStack()
	}
	start := time.Now()
	qtype := uint16(0)
	if len(r.Question) == 1 {
		qtype = r.Question[0].Qtype
	}
	rcode, err := h.serve(ctx, w, r)
	h.svc.metrics.observe(qtype, rcode, time.Since(start))
	return dns.RcodeSuccess, err // every path wrote its own reply
}

// serve writes the reply to r and returns its rcode: the message's form first, then
// its signature, then what it asks.
func (h *handler) serve(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	opts := 0
	for _, rr := range r.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opts++
		}
	}
	if opts > 1 {
		return reply(w, r, dns.RcodeFormatError) // RFC 6891 §6.1.1
	}
	key, tsig := "", r.IsTsig()
	if tsig != nil {
		var done bool
		var err error
		if key, done, err = h.svc.verify(w, r, tsig); done {
			return dns.RcodeNotAuth, err
		}
	}
	if r.Opcode == dns.OpcodeQuery && len(r.Question) == 1 && (r.Question[0].Qtype == dns.TypeAXFR || r.Question[0].Qtype == dns.TypeIXFR) {
		return h.svc.serveTransfer(w, r, key)
	}
	if t := tsig; t != nil {
		r.Extra = r.Extra[:len(r.Extra)-1] // what follows reads the message, not its signature
		w = &tsigWriter{ResponseWriter: w, req: t}
	}
	do := false
	if opt := r.IsEdns0(); opt != nil {
		do = opt.Do()
		w = &ednsWriter{ResponseWriter: w, do: do}
	}
	switch {
	case r.Opcode == dns.OpcodeUpdate:
		return h.svc.update(ctx, w, r, key)
	case r.Opcode != dns.OpcodeQuery:
		return reply(w, r, dns.RcodeNotImplemented)
	case len(r.Question) != 1:
		return reply(w, r, dns.RcodeFormatError)
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	v := h.svc.view()
	zone := v.zoneOf(name)
	if zone == "" {
		if h.next == nil || !r.RecursionDesired || !h.svc.mayRecurse(w.RemoteAddr()) {
			return reply(w, r, dns.RcodeRefused) // (RD=0: the client asks us, not the world)
		}
		rc, err := plugin.NextOrFailure(pluginName, h.next, ctx, recursive{w}, r)
		if !plugin.ClientWrite(rc) {
			return reply(w, r, rc)
		}
		return rc, err
	}
	if !h.svc.answersFromModel() {
		return reply(w, r, dns.RcodeServerFailure) // starting behind the cluster: another name server answers
	}
	if !h.svc.cfg.Load().rrl.Allow(clientAddr(w.RemoteAddr()), time.Now()) {
		h.svc.metrics.limited.Inc() // response rate limiting: the client gets nothing
		return dns.RcodeRefused, nil
	}
	m := new(dns.Msg)
	m.SetReply(r)
	if q.Qtype != dns.TypeDS || !v.parentDS(m, name) {
		v.answer(m, name, q.Qtype, zone)
	}
	if do && v.dnssec != nil {
		v.dnssec.signReply(&v, m, name, q.Qtype)
	}
	return m.Rcode, w.WriteMsg(m)
}

// ednsWriter gives a reply to an EDNS query an OPT record of infrad's own (RFC 6891):
// version 0, the DO bit as asked, and no Z flags or options echoed from the query or
// an upstream. (Its UDP size is CoreDNS's to set: its scrubbing writes the client's.)
type ednsWriter struct {
	dns.ResponseWriter
	do bool
}

func (w *ednsWriter) WriteMsg(m *dns.Msg) error {
	m.Extra = slices.DeleteFunc(m.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeOPT })
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	if w.do {
		o.SetDo()
	}
	// Before a TSIG, which must stay last to be signed (a transfer's messages carry
	// theirs already); CoreDNS's scrubbing would otherwise append an OPT after it.
	at := len(m.Extra)
	if m.IsTsig() != nil {
		at--
	}
	m.Extra = slices.Insert(m.Extra, at, dns.RR(o))
	return w.ResponseWriter.WriteMsg(m)
}

// recursive marks a forwarded answer as infrad's: recursion available, and not
// authoritative, whatever the upstream said.
type recursive struct{ dns.ResponseWriter }

func (w recursive) WriteMsg(m *dns.Msg) error {
	m.Authoritative, m.RecursionAvailable = false, true
	return w.ResponseWriter.WriteMsg(m)
}

func reply(w dns.ResponseWriter, r *dns.Msg, rcode int) (int, error) {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	return rcode, w.WriteMsg(m)
}

// serialNewer reports whether serial a is newer than b (RFC 1982).
func serialNewer(a, b uint32) bool { return a != b && a-b < 1<<31 }

// clientAddr returns the address of a DNS client.
func clientAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap.Addr().Unmap()
}
