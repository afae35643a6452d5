package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/tsig"
	"github.com/miekg/dns"

	"github.com/infrad/infrad/pkg/config"
)

// Two small plugins stand around CoreDNS's tsig and transfer plugins:
//
//   - guard, the first plugin, refuses a message with more than one OPT record
//     (FORMERR, RFC 6891 §6.1.1), and answers what the tsig plugin gets wrong: a message signed
//     with a key infrad does not have, or with an algorithm other than the key's, is
//     BADKEY (CoreDNS checks only the name, so any HMAC of the right secret passed), and
//     a wrong MAC is BADSIG. Both answers are unsigned with the server's time in Time
//     Signed, as RFC 8945 §5.3.2 says (CoreDNS sent time 0, which nsupdate and dig
//     report as unsynchronised clocks). BADTIME and good signatures go on to tsig,
//     which signs the reply.
//   - transferACL, between tsig and transfer, decides who may transfer a zone: a
//     transfer signed with a key that may transfer, from anywhere (external-dns in a
//     cluster has no fixed address), or an unsigned one from a secondary or a
//     transfer_from source. The transfer plugin itself is told "to *" and the
//     secondaries, which it only notifies.

// tsigPolicy is what the two plugins read of the site file.
type tsigPolicy struct {
	keys         map[string]config.TSIGKey // by lower-case name
	transferFrom []netip.Prefix            // the secondaries' addresses and transfer_from
}

func newTSIGPolicy(d config.DNS) *tsigPolicy {
	p := &tsigPolicy{keys: map[string]config.TSIGKey{}, transferFrom: slices.Clone(d.TransferFrom)}
	for _, k := range d.TSIGKeys {
		p.keys[strings.ToLower(string(k.Name))] = k
	}
	for _, s := range d.Secondaries {
		a := s.Addr().Unmap()
		p.transferFrom = append(p.transferFrom, netip.PrefixFrom(a, a.BitLen()))
	}
	return p
}

type guard struct {
	svc  *Service
	next plugin.Handler
}

func (h *guard) Name() string { return guardName }

func (h *guard) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	opts := 0
	for _, rr := range r.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opts++
		}
	}
	if opts > 1 {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeFormatError)
		return dns.RcodeFormatError, w.WriteMsg(m)
	}
	t := r.IsTsig()
	if t == nil {
		return plugin.NextOrFailure(h.Name(), h.next, ctx, w, r)
	}
	key, known := h.svc.cfg.Load().tsig.keys[strings.ToLower(t.Hdr.Name)]
	var tsigErr uint16
	switch status := w.TsigStatus(); {
	case !known || dns.CanonicalName(t.Algorithm) != dns.CanonicalName(key.Algorithm+"."):
		tsigErr = dns.RcodeBadKey
	case status == nil || errors.Is(status, dns.ErrTime):
		return plugin.NextOrFailure(h.Name(), h.next, ctx, w, r)
	default:
		tsigErr = dns.RcodeBadSig
	}
	h.svc.log.Info("dns: a signed message refused", "key", t.Hdr.Name, "algorithm", t.Algorithm,
		"error", dns.RcodeToString[int(tsigErr)], "client", clientAddr(w.RemoteAddr()))
	return dns.RcodeNotAuth, writeTSIGError(w, r, t, tsigErr, time.Now())
}

// writeTSIGError answers r NOTAUTH with an unsigned TSIG carrying tsigErr (RFC 8945
// §5.3.2): no MAC, and now as Time Signed. It is written as bytes, so that nothing
// on the way tries to sign it.
func writeTSIGError(w dns.ResponseWriter, r *dns.Msg, t *dns.TSIG, tsigErr uint16, now time.Time) error {
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeNotAuth)
	m.Extra = append(m.Extra, &dns.TSIG{
		Hdr:        dns.RR_Header{Name: t.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm:  t.Algorithm,
		TimeSigned: uint64(now.Unix()),
		Fudge:      t.Fudge,
		OrigId:     r.Id,
		Error:      tsigErr,
	})
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

type transferACL struct {
	svc  *Service
	next plugin.Handler
}

func (h *transferACL) Name() string { return transferACLName }

func (h *transferACL) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) != 1 || (r.Question[0].Qtype != dns.TypeAXFR && r.Question[0].Qtype != dns.TypeIXFR) {
		return plugin.NextOrFailure(h.Name(), h.next, ctx, w, r)
	}
	if !h.allowed(ctx, w) {
		return reply(w, r, dns.RcodeRefused)
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp && r.Question[0].Qtype == dns.TypeIXFR {
		// RFC 1995 §2: an IXFR over UDP whose answer may not fit gets the current SOA
		// alone, and the client asks again over TCP.
		v := h.svc.view()
		zone := strings.ToLower(r.Question[0].Name)
		if !v.isZone(zone) {
			return reply(w, r, dns.RcodeNotAuth)
		}
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		m.Answer = []dns.RR{v.soa(zone, v.ttl)}
		return dns.RcodeSuccess, w.WriteMsg(m)
	}
	return plugin.NextOrFailure(h.Name(), h.next, ctx, w, r)
}

// allowed says whether the client of a transfer may have it.
func (h *transferACL) allowed(ctx context.Context, w dns.ResponseWriter) bool {
	p := h.svc.cfg.Load().tsig
	if key, signed := tsig.ValidatedKeyName(ctx); signed {
		return p.keys[strings.ToLower(key)].Transfer
	}
	client := clientAddr(w.RemoteAddr())
	return slices.ContainsFunc(p.transferFrom, func(pr netip.Prefix) bool { return pr.Contains(client) })
}
