package dns

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/pkg/config"
)

// TSIG (RFC 8945). The front door verifies a signed message's MAC with the site's
// keys (tsigPolicy is the miekg/dns TsigProvider, hmac-md5 included: cert-manager's
// default, which BIND and Knot accept and miekg/dns's own provider no longer does) and
// the reply writer signs a reply that carries a TSIG record. A message signed with a
// key infrad does not have, or with an algorithm other than the key's, is BADKEY; a
// wrong MAC is BADSIG; both answers are unsigned with the server's time in Time
// Signed. A message outside the time window gets BADTIME, signed, with the server's
// time in Other Data.

// tsigPolicy is what the plugin reads of the site file's keys and transfer settings.
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

// algorithms are the HMACs of the site's TSIG keys, by their name on the wire.
var algorithms = map[string]func() hash.Hash{
	dns.HmacMD5:    md5.New,
	dns.HmacSHA1:   sha1.New,
	dns.HmacSHA224: sha256.New224,
	dns.HmacSHA256: sha256.New,
	dns.HmacSHA384: sha512.New384,
	dns.HmacSHA512: sha512.New,
}

// wireAlgorithm is the name a site file's algorithm has in a TSIG record.
func wireAlgorithm(alg string) string {
	if alg == "hmac-md5" {
		return dns.HmacMD5
	}
	return alg + "."
}

// Generate is the MAC of msg under t's key (a miekg/dns TsigProvider).
func (p *tsigPolicy) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	k, ok := p.keys[strings.ToLower(t.Hdr.Name)]
	if !ok {
		return nil, dns.ErrSecret
	}
	newHash, ok := algorithms[dns.CanonicalName(t.Algorithm)]
	if !ok || dns.CanonicalName(t.Algorithm) != wireAlgorithm(k.Algorithm) {
		return nil, dns.ErrKeyAlg
	}
	secret, err := base64.StdEncoding.DecodeString(k.Secret)
	if err != nil {
		return nil, err
	}
	h := hmac.New(newHash, secret)
	h.Write(msg)
	return h.Sum(nil), nil
}

// Verify checks t's MAC of msg (a miekg/dns TsigProvider).
func (p *tsigPolicy) Verify(msg []byte, t *dns.TSIG) error {
	want, err := p.Generate(msg, t)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(t.MAC)
	if err != nil {
		return err
	}
	if !hmac.Equal(got, want) {
		return dns.ErrSig
	}
	return nil
}

// verify judges the TSIG t of r. It returns the key's name when the signature is good;
// otherwise it has answered r itself, and returns done.
func (s *Service) verify(w dns.ResponseWriter, r *dns.Msg, t *dns.TSIG) (key string, done bool, err error) {
	k, known := s.cfg.Load().tsig.keys[strings.ToLower(t.Hdr.Name)]
	var tsigErr uint16
	switch status := w.TsigStatus(); {
	case !known || dns.CanonicalName(t.Algorithm) != wireAlgorithm(k.Algorithm):
		tsigErr = dns.RcodeBadKey
	case errors.Is(status, dns.ErrTime):
		s.log.Info("dns: a signed message outside the time window", "key", t.Hdr.Name, "client", clientAddr(w.RemoteAddr()))
		r.Extra = r.Extra[:len(r.Extra)-1]
		var out dns.ResponseWriter = &tsigWriter{ResponseWriter: w, req: t, err: dns.RcodeBadTime}
		if opt := r.IsEdns0(); opt != nil {
			out = &ednsWriter{ResponseWriter: out, do: opt.Do()} // (before the TSIG, which is signed last)
		}
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNotAuth)
		return "", true, out.WriteMsg(m)
	case status == nil:
		return strings.ToLower(t.Hdr.Name), false, nil
	default:
		tsigErr = dns.RcodeBadSig
	}
	s.log.Info("dns: a signed message refused", "key", t.Hdr.Name, "algorithm", t.Algorithm,
		"error", dns.RcodeToString[int(tsigErr)], "client", clientAddr(w.RemoteAddr()))
	return "", true, writeTSIGError(w, r, t, tsigErr, time.Now())
}

// writeTSIGError answers r NOTAUTH with an unsigned TSIG carrying tsigErr (RFC 8945
// §5.3.2): no MAC, and now as Time Signed. It is written as bytes, so that nothing
// on the way tries to sign it.
func writeTSIGError(w dns.ResponseWriter, r *dns.Msg, t *dns.TSIG, tsigErr uint16, now time.Time) error {
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeNotAuth)
	m.Extra = append(m.Extra, &dns.TSIG{
		Hdr:        dns.RR_Header{Name: t.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm:  dns.Fqdn(t.Algorithm), // (miekg/dns packs an empty name as nothing at all)
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

// tsigWriter gives every reply to a signed request a TSIG record of the request's key,
// last in the message, which the reply writer then signs.
type tsigWriter struct {
	dns.ResponseWriter
	req *dns.TSIG // the request's
	err uint16    // the TSIG error to report: BADTIME, or none
}

func (w *tsigWriter) WriteMsg(m *dns.Msg) error {
	t := &dns.TSIG{Hdr: dns.RR_Header{Name: w.req.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm: w.req.Algorithm, Fudge: w.req.Fudge, OrigId: m.Id, Error: w.err}
	if w.err == dns.RcodeBadTime {
		// RFC 8945 §5.2.3: the client's time in Time Signed, the server's (48 bits) in
		// Other Data.
		t.TimeSigned = w.req.TimeSigned
		b := make([]byte, 8)
		binary.BigEndian.PutUint64(b, uint64(time.Now().Unix()))
		t.OtherData, t.OtherLen = hex.EncodeToString(b[2:]), 6
	}
	m.Extra = append(m.Extra, t)
	return w.ResponseWriter.WriteMsg(m)
}

// mayTransfer says whether the client of a transfer may have it: signed with a key
// that may transfer, from anywhere (external-dns in a cluster has no fixed address),
// or unsigned from a secondary or a transfer_from source.
func (s *Service) mayTransfer(w dns.ResponseWriter, key string) bool {
	p := s.cfg.Load().tsig
	if key != "" {
		return p.keys[key].Transfer
	}
	client := clientAddr(w.RemoteAddr())
	return slices.ContainsFunc(p.transferFrom, func(pr netip.Prefix) bool { return pr.Contains(client) })
}
