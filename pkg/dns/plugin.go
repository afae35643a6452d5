package dns

import (
	"context"
	"net"
	"net/netip"
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
	"github.com/coredns/coredns/plugin/transfer"
	_ "github.com/coredns/coredns/plugin/tsig"
	"github.com/miekg/dns"
)

const pluginName = "infrad"

// directives is the plugin chain, in order; the Corefile uses only these.
var directives = []string{"bind", guardName, "tsig", transferACLName, "transfer", pluginName, "cache", "forward"}

// The names of infrad's plugins around CoreDNS's tsig and transfer (tsig.go).
const (
	guardName       = pluginName + "_guard"
	transferACLName = pluginName + "_transfer"
)

// CoreDNS keeps its plugins and directive list in package state, so this file does too:
// the registration happens once, and each Corefile names its Service by an id.
var (
	registerOnce sync.Once
	services     sync.Map // id → *Service
)

func register() {
	registerOnce.Do(func() {
		plugin.Register(pluginName, setup)
		plugin.Register(guardName, setupAround(func(svc *Service, next plugin.Handler) plugin.Handler { return &guard{svc: svc, next: next} }))
		plugin.Register(transferACLName, setupAround(func(svc *Service, next plugin.Handler) plugin.Handler { return &transferACL{svc: svc, next: next} }))
		if err := dnsserver.SetDirectives(directives); err != nil {
			panic("dns: " + err.Error())
		}
		caddy.Quiet, dnsserver.Quiet = true, true
	})
}

// serviceOf reads the "<directive> <id>" line of a plugin and returns the Service it names.
func serviceOf(c *caddy.Controller) (*Service, error) {
	c.Next()
	name := c.Val()
	if !c.NextArg() {
		return nil, plugin.Error(name, c.ArgErr())
	}
	v, ok := services.Load(c.Val())
	if !ok {
		return nil, plugin.Error(name, c.Errf("no service %q", c.Val()))
	}
	return v.(*Service), nil
}

// setupAround sets up one of the plugins around CoreDNS's tsig and transfer.
func setupAround(handler func(*Service, plugin.Handler) plugin.Handler) caddy.SetupFunc {
	return func(c *caddy.Controller) error {
		svc, err := serviceOf(c)
		if err != nil {
			return err
		}
		dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler { return handler(svc, next) })
		return nil
	}
}

// setup reads "infrad <id>" and puts the Service's handler into the server block.
func setup(c *caddy.Controller) error {
	svc, err := serviceOf(c)
	if err != nil {
		return err
	}
	cfg := dnsserver.GetConfig(c)
	cfg.AllowOpcode(dns.OpcodeUpdate) // CoreDNS answers NOTIMP to opcodes no plugin asked for
	cfg.AddPlugin(func(next plugin.Handler) plugin.Handler { return &handler{svc: svc, next: next} })
	c.OnStartup(func() error {
		if t, ok := cfg.Handler("transfer").(*transfer.Transfer); ok {
			svc.transfer.Store(t)
		}
		return nil
	})
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

func (h *handler) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	start := time.Now()
	qtype := uint16(0)
	if len(r.Question) == 1 {
		qtype = r.Question[0].Qtype
	}
	if opt := r.IsEdns0(); opt != nil {
		w = &ednsWriter{ResponseWriter: w, do: opt.Do()}
	}
	rcode, err := h.serve(ctx, w, r)
	h.svc.metrics.observe(qtype, rcode, time.Since(start))
	return dns.RcodeSuccess, err // every path wrote its own reply
}

// serve writes the reply to r and returns its rcode.
func (h *handler) serve(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	switch {
	case r.Opcode == dns.OpcodeUpdate:
		return h.svc.update(ctx, w, r)
	case r.Opcode != dns.OpcodeQuery:
		return reply(w, r, dns.RcodeNotImplemented)
	case len(r.Question) != 1:
		return reply(w, r, dns.RcodeFormatError)
	case r.Question[0].Qtype == dns.TypeAXFR || r.Question[0].Qtype == dns.TypeIXFR:
		return reply(w, r, dns.RcodeRefused) // the transfer plugin, before us, serves the secondaries
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
	if !h.svc.cfg.Load().rrl.Allow(clientAddr(w.RemoteAddr()), time.Now()) {
		h.svc.metrics.limited.Inc() // response rate limiting: the client gets nothing
		return dns.RcodeRefused, nil
	}
	m := new(dns.Msg)
	m.SetReply(r)
	v.answer(m, name, q.Qtype, zone)
	return m.Rcode, w.WriteMsg(m)
}

// ednsUDPSize is the UDP payload infrad's replies advertise (the DNS flag day's 1232).
const ednsUDPSize = 1232

// ednsWriter gives a reply to an EDNS query an OPT record of infrad's own (RFC 6891):
// version 0, infrad's UDP size, the DO bit as asked, and no Z flags or options echoed
// from the query or an upstream. (CoreDNS then sets the UDP size to the client's.)
type ednsWriter struct {
	dns.ResponseWriter
	do bool
}

func (w *ednsWriter) WriteMsg(m *dns.Msg) error {
	m.Extra = slices.DeleteFunc(m.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeOPT })
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(ednsUDPSize)
	if w.do {
		o.SetDo()
	}
	m.Extra = append(m.Extra, o)
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

// Transfer gives the transfer plugin a zone of the current model: an AXFR; for an
// IXFR (RFC 1995), the SOA alone when the secondary is current, the differences since
// its serial when IPAM still has that serial's model (condensed into one: the RRs
// deleted, then those added), and the whole zone otherwise.
func (h *handler) Transfer(zone string, serial uint32) (<-chan []dns.RR, error) {
	v := h.svc.view()
	zone = strings.ToLower(zone)
	if !v.isZone(zone) {
		return nil, transfer.ErrNotAuthoritative
	}
	ch := make(chan []dns.RR, 1)
	soa := v.soa(zone, v.ttl)
	if serial != 0 && !serialNewer(v.m.Serial(), serial) {
		ch <- []dns.RR{soa}
		close(ch)
		return ch, nil
	}
	if old, ok := h.svc.ipam.AtSerial(serial); ok && serial != 0 {
		was := view{m: old, zones: zonesOf(old), settings: v.settings}
		if was.isZone(zone) {
			go func() {
				defer close(ch)
				before, after := was.contents(zone), v.contents(zone)
				ch <- []dns.RR{soa, was.soa(zone, v.ttl)}
				for k, rr := range before {
					if _, kept := after[k]; !kept {
						ch <- []dns.RR{rr}
					}
				}
				ch <- []dns.RR{soa}
				for k, rr := range after {
					if _, had := before[k]; !had {
						ch <- []dns.RR{rr}
					}
				}
				ch <- []dns.RR{soa}
			}()
			return ch, nil
		}
	}
	go func() {
		defer close(ch)
		ch <- []dns.RR{soa}
		for _, name := range v.owners(zone) {
			n, _ := v.node(name)
			var rrs []dns.RR
			for t, set := range n {
				if !(name == zone && t == dns.TypeSOA) {
					rrs = append(rrs, set...)
				}
			}
			if len(rrs) > 0 {
				ch <- rrs
			}
		}
		for _, rr := range v.delegations(zone) {
			ch <- []dns.RR{rr}
		}
		ch <- []dns.RR{soa}
	}()
	return ch, nil
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
