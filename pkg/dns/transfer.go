package dns

import (
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// serveTransfer answers an AXFR or IXFR (RFC 5936, RFC 1995) from r's client, whose
// TSIG key is key ("" for none): refused unless mayTransfer; over UDP an IXFR gets the
// current SOA alone, so that the client asks again over TCP, and an AXFR is refused;
// over TCP the zone, or its differences, in messages of at most 64 KB, each signed
// when the request was.
func (s *Service) serveTransfer(w dns.ResponseWriter, r *dns.Msg, key string) (int, error) {
	q := r.Question[0]
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	v := s.view()
	zone := strings.ToLower(q.Name)
	if opt := r.IsEdns0(); opt != nil {
		w = &ednsWriter{ResponseWriter: w, do: opt.Do()} // (an OPT of the transfer's own, before its TSIG)
	}
	rw := w // where plain replies go: signed, when the request was
	if t := r.IsTsig(); t != nil {
		rw = &tsigWriter{ResponseWriter: w, req: t}
	}
	switch {
	case !s.mayTransfer(w, key):
		return reply(rw, r, dns.RcodeRefused)
	case !v.isZone(zone):
		return reply(rw, r, dns.RcodeNotAuth)
	case udp && q.Qtype == dns.TypeAXFR:
		return reply(rw, r, dns.RcodeRefused)
	case udp:
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		m.Answer = []dns.RR{v.soa(zone, v.m.TTL())}
		return dns.RcodeSuccess, rw.WriteMsg(m)
	}
	var serial uint32
	if q.Qtype == dns.TypeIXFR {
		soa, ok := firstSOA(r.Ns)
		if !ok {
			return reply(rw, r, dns.RcodeFormatError) // an IXFR carries the client's SOA
		}
		serial = soa.Serial
	}
	// miekg/dns's Transfer.Out writes each envelope as a message, signed (chained to
	// the last) when the request was.
	envelopes := make(chan *dns.Envelope)
	done := make(chan error, 1)
	go func() { done <- new(dns.Transfer).Out(w, r, envelopes) }()
	records := s.zoneRecords(v, zone, serial)
	send := func(rrs []dns.RR) error {
		select {
		case envelopes <- &dns.Envelope{RR: rrs}:
			return nil
		case err := <-done: // the client went away: let the records' producer finish
			go func() {
				for range records {
				}
			}()
			return err
		}
	}
	var batch []dns.RR
	size := 0
	for rrs := range records {
		for _, rr := range rrs {
			// A TCP message holds 64 KB: the header and question are not counted here,
			// so the batch leaves room for them.
			if n := dns.Len(rr); len(batch) > 0 && size+n > 63000 {
				if err := send(batch); err != nil {
					return dns.RcodeServerFailure, err
				}
				batch, size = nil, 0
			}
			batch = append(batch, rr)
			size += dns.Len(rr)
		}
	}
	if err := send(batch); err != nil {
		return dns.RcodeServerFailure, err
	}
	close(envelopes)
	if err := <-done; err != nil {
		return dns.RcodeServerFailure, err
	}
	s.log.Info("dns: zone transferred", "zone", zone, "type", dns.TypeToString[q.Qtype], "from_serial", serial, "serial", v.m.Serial(),
		"key", key, "client", clientAddr(w.RemoteAddr()))
	return dns.RcodeSuccess, nil
}

// zoneRecords are the records of a transfer of zone, one of v's: an AXFR's (serial 0);
// for an IXFR (RFC 1995), the SOA alone when the secondary is current, the
// differences since its serial when IPAM still has that serial's model (condensed
// into one: the RRs deleted, then those added), and the whole zone otherwise, as it
// always is when the zone is signed.
func (s *Service) zoneRecords(v view, zone string, serial uint32) <-chan []dns.RR {
	ch := make(chan []dns.RR, 1)
	soa := v.soa(zone, v.m.TTL())
	if serial != 0 && !serialNewer(v.m.Serial(), serial) {
		ch <- []dns.RR{soa}
		close(ch)
		return ch
	}
	if v.dnssec != nil { // signed: the whole zone, whose NSEC chain and signatures an IXFR's differences would have to carry too
		go func() {
			defer close(ch)
			ch <- v.dnssec.signZone(&v, zone)
			ch <- []dns.RR{soa}
		}()
		return ch
	}
	if old, ok := s.ipam.AtSerial(serial); ok && serial != 0 {
		was := view{m: old}
		if was.isZone(zone) {
			go func() {
				defer close(ch)
				before, after := was.contents(zone), v.contents(zone)
				ch <- []dns.RR{soa, was.soa(zone, old.TTL())}
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
			return ch
		}
	}
	go func() {
		defer close(ch)
		ch <- []dns.RR{soa}
		v.eachRRs(zone, func(rrs []dns.RR) { ch <- rrs })
		ch <- []dns.RR{soa}
	}()
	return ch
}

func firstSOA(rrs []dns.RR) (*dns.SOA, bool) {
	if len(rrs) != 1 {
		return nil, false
	}
	soa, ok := rrs[0].(*dns.SOA)
	return soa, ok
}

// notify sends a NOTIFY of each of zones to every secondary, three tries each.
func (s *Service) notify(zones []string) {
	c := &dns.Client{Timeout: 2 * time.Second}
	for _, z := range zones {
		m := new(dns.Msg).SetNotify(z)
		for _, to := range s.cfg.Load().secondaries {
			var err error
			for range 3 {
				var r *dns.Msg
				if r, _, err = c.Exchange(m, to.String()); err == nil && r.Rcode != dns.RcodeSuccess {
					err = errRcode(r.Rcode)
				}
				if err == nil {
					break
				}
			}
			if err != nil {
				s.log.Warn("notify of a secondary failed", "zone", z, "secondary", to, "err", err)
			}
		}
	}
}

type errRcode int

func (e errRcode) Error() string { return "the secondary answered " + dns.RcodeToString[int(e)] }
