package dns

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// update applies an RFC 2136 UPDATE through IPAM's write path: its prerequisites
// are checked, and its changes become IPAM records (API-owned, so they survive restarts
// and show in the API), in the one transaction that writes them. The answer leaves
// after the change is published, so a query right after it sees it. key is the TSIG
// key the update was signed with (bad signatures were answered before): an unsigned
// update is refused; names of hosts and leases, and the records of the site file, are
// refused by IPAM.
func (s *Service) update(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, key string) (int, error) {
	if key == "" {
		return reply(w, r, dns.RcodeRefused)
	}
	if len(r.Question) != 1 || r.Question[0].Qtype != dns.TypeSOA {
		return reply(w, r, dns.RcodeFormatError)
	}
	zone := strings.ToLower(r.Question[0].Name)
	if v := s.view(); !v.isZone(zone) {
		return reply(w, r, dns.RcodeNotAuth)
	}
	prereqs, rc := prerequisites(r.Answer, zone)
	if rc != dns.RcodeSuccess {
		return reply(w, r, rc)
	}
	changes, rc := updates(r.Ns, zone)
	if rc != dns.RcodeSuccess {
		return reply(w, r, rc)
	}
	err := s.ipam.Update(ipam.WithSource(ctx, "rfc2136 key "+key), site.Name(zone), prereqs, changes)
	var unmet *ipam.PrereqError
	var refused *ipam.Error
	switch {
	case errors.As(err, &unmet):
		return reply(w, r, dns.StringToRcode[unmet.Rcode])
	case errors.As(err, &refused):
		s.log.Info("dns update refused", "key", key, "zone", zone, "why", err.Error())
		return reply(w, r, dns.RcodeRefused)
	case err != nil:
		s.log.Error("dns update failed", "key", key, "zone", zone, "err", err)
		return reply(w, r, dns.RcodeServerFailure)
	}
	s.log.Info("dns update applied", "key", key, "zone", zone, "changes", len(changes))
	return reply(w, r, dns.RcodeSuccess)
}

// updateTypes are the types an update may add; they are the types IPAM holds.
var updateTypes = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeSRV, dns.TypeTXT, dns.TypeMX, dns.TypePTR}

// updates turns the update section into record changes (RFC 2136 §3.4).
func updates(rrs []dns.RR, zone string) ([]ipam.RecordChange, int) {
	var out []ipam.RecordChange
	for _, rr := range rrs {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		if !dns.IsSubDomain(zone, name) {
			return nil, dns.RcodeNotZone
		}
		change := ipam.RecordChange{Name: site.Name(name), Type: dns.TypeToString[h.Rrtype]}
		switch h.Class {
		case dns.ClassINET:
			if !slices.Contains(updateTypes, h.Rrtype) {
				return nil, dns.RcodeRefused
			}
			change.Add, change.Value, change.TTL = true, rdata(rr), h.Ttl
		case dns.ClassANY:
			if h.Ttl != 0 || h.Rdlength != 0 {
				return nil, dns.RcodeFormatError
			}
			if h.Rrtype == dns.TypeANY {
				change.Type = ""
			} else if !slices.Contains(updateTypes, h.Rrtype) {
				continue // the apex SOA and NS are not ours to delete (§3.4.2.3)
			}
		case dns.ClassNONE:
			if h.Ttl != 0 {
				return nil, dns.RcodeFormatError
			}
			if !slices.Contains(updateTypes, h.Rrtype) {
				continue
			}
			change.Value = rdata(rr)
		default:
			return nil, dns.RcodeFormatError
		}
		out = append(out, change)
	}
	return out, dns.RcodeSuccess
}

// prerequisites reads the prerequisite section (RFC 2136 §2.4, §3.2.1); IPAM checks
// them against the site inside the update's transaction.
func prerequisites(rrs []dns.RR, zone string) ([]ipam.Prereq, int) {
	var out []ipam.Prereq
	for _, rr := range rrs {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		if h.Ttl != 0 {
			return nil, dns.RcodeFormatError
		}
		if !dns.IsSubDomain(zone, name) {
			return nil, dns.RcodeNotZone
		}
		p := ipam.Prereq{Name: site.Name(name), Type: dns.TypeToString[h.Rrtype]}
		switch h.Class {
		case dns.ClassANY, dns.ClassNONE:
			if h.Rdlength != 0 {
				return nil, dns.RcodeFormatError
			}
			p.Class = dns.ClassToString[h.Class]
		case dns.ClassINET:
			p.Class, p.Value = "IN", rdata(rr)
		default:
			return nil, dns.RcodeFormatError
		}
		out = append(out, p)
	}
	return out, dns.RcodeSuccess
}

// rdata is an RR's data in presentation form, as IPAM keeps record values.
func rdata(rr dns.RR) string {
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}
