package dns

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// handler answers the queries the front door reads. It answers every name in the
// site's zones from the current snapshot; other names go on to the resolver (cache
// and forward) for clients that may recurse, and are REFUSED for the rest: infrad is
// never an open resolver.
type handler struct {
	svc *Service
}

// read unpacks the query in b, as miekg/dns's server does: a response, or bytes
// with no header, are dropped; an opcode infrad does not serve is NOTIMP, a message
// that does not parse or is not shaped as a query FORMERR, both answered with the
// header and what question was read. A signed query's TSIG is verified, its status left in w.
func (h *handler) read(b []byte, w *replyWriter) (*dns.Msg, bool) {
	r := new(dns.Msg)
	err := r.Unpack(b)
	if len(b) < 12 || r.Response {
		return nil, false
	}
	switch {
	case r.Opcode != dns.OpcodeQuery && r.Opcode != dns.OpcodeNotify && r.Opcode != dns.OpcodeUpdate:
		reply(w, r, dns.RcodeNotImplemented)
		return nil, false
	case err != nil || len(r.Question) != 1,
		r.Opcode != dns.OpcodeUpdate && (len(r.Answer) > 1 || len(r.Ns) > 1 || len(r.Extra) > 2):
		reply(w, r, dns.RcodeFormatError)
		return nil, false
	}
	w.size = dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		w.size = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
	}
	if t := r.IsTsig(); t != nil {
		p := h.svc.cfg.Load().tsig
		w.tsig, w.tsigMAC = p, t.MAC
		w.tsigStatus = dns.TsigVerifyWithProvider(b, p, "", false)
	}
	return r, true
}

// waits says whether r waits on something other than the model: an UPDATE signed
// with a good signature commits through the write path, and a name outside the zones
// is forwarded for a client that may recurse. The front door hands those to its
// workers; the rest (an unsigned UPDATE, refused at once) cannot crowd them out.
func (h *handler) waits(r *dns.Msg, w dns.ResponseWriter) bool {
	switch {
	case r.Opcode == dns.OpcodeUpdate:
		return r.IsTsig() != nil && w.TsigStatus() == nil
	case r.Opcode != dns.OpcodeQuery || !r.RecursionDesired || h.svc.resolver.Load() == nil:
		return false
	}
	v := h.svc.view()
	return v.zoneOf(strings.ToLower(r.Question[0].Name)) == "" && h.svc.mayRecurse(w.RemoteAddr())
}

// serveDNS answers r and counts it.
func (h *handler) serveDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) {
	start := time.Now()
	rcode, err := h.serve(ctx, w, r)
	if err != nil && ctx.Err() == nil {
		h.svc.log.Debug("dns: a reply", "err", err, "client", clientAddr(w.RemoteAddr()))
	}
	h.svc.metrics.observe(r.Question[0].Qtype, rcode, time.Since(start))
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
	if r.Opcode != dns.OpcodeUpdate && r.Question[0].Qclass != dns.ClassINET {
		return reply(w, r, dns.RcodeRefused)
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
		if opt.Version() != 0 {
			return reply(w, r, dns.RcodeBadVers) // RFC 6891 §6.1.3: infrad speaks version 0
		}
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
		rs := h.svc.resolver.Load()
		if rs == nil || !r.RecursionDesired || !h.svc.mayRecurse(w.RemoteAddr()) {
			return reply(w, r, dns.RcodeRefused) // (RD=0: the client asks us, not the world)
		}
		return rs.serve(ctx, recursive{w}, r)
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
// version 0, infrad's UDP size, the DO bit as asked, and no Z flags or options echoed
// from the query or an upstream.
type ednsWriter struct {
	dns.ResponseWriter
	do bool
}

func (w *ednsWriter) WriteMsg(m *dns.Msg) error {
	m.Extra = slices.DeleteFunc(m.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeOPT })
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(maxUDPSize)
	if w.do {
		o.SetDo()
	}
	// Before a TSIG, which must stay last to be signed (a transfer's messages carry
	// theirs already).
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
