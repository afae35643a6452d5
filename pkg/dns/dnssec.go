package dns

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin/pkg/cache"
	"github.com/miekg/dns"

	"github.com/infrad/infrad/pkg/ipam"
)

// DNSSEC (dns.dnssec: true) signs the site's zones online, as each answer is made:
// an RRset is signed the first time it is served, as of the model's signing time
// (ipam.Model.SignedAt: the validity, and which keys publish and sign), and its
// signature kept; resign moves that time, raising the serial, before signatures age. One key-signing key (KSK) signs each zone's DNSKEY set, and a
// zone-signing key (ZSK) the rest; both are ECDSA P-256 (algorithm 13), made by infrad
// and kept in the store's key ring "dnssec", so every box of a cluster signs with
// the same keys. The ZSK rolls every zskLifetime by pre-publication (RFC 6781 §4.1.1.1):
// its successor is in the DNSKEY set prepublish before it signs, and it stays there
// until every signature it made has expired. Denial of existence is compact (RFC
// 9824): a name that does not exist, or has no RRset of the type asked, is proved so
// by one NSEC at the name itself, signed on the spot, which says what types it has
// (none: NXNAME). A zone transfer carries the signed zone with its full NSEC chain.
//
// Signing trusts the clock: while NTP is at leap 3, no signature is made or renewed
// (those kept are served as they are, and a validator refuses them once they have
// expired), and no key is rolled.

// ringName is the key ring's name in the store.
const ringName = "dnssec"

const (
	zskLifetime = 30 * 24 * time.Hour
	// prepublish is how long a new ZSK is in the DNSKEY set before it signs: far more
	// than a DNSKEY set's TTL, so every resolver has it by then.
	prepublish = 2 * 24 * time.Hour
	// sigValidity is how long a signature is valid (from sigBackdate before the
	// signing time, for clocks a little behind); the signing time moves on once
	// sigRefresh has passed, so every signature served has at least that left.
	sigValidity = 14 * 24 * time.Hour
	sigRefresh  = 7 * 24 * time.Hour
	sigBackdate = time.Hour
	// sigCacheSize bounds the signatures kept: beyond it, some are dropped, and made
	// anew when next asked for.
	sigCacheSize = 100_000
)

// typeNXNAME is the NSEC type bit that says a name does not exist (RFC 9824 §2).
const typeNXNAME = 128

// signingKey is one key of the ring, as the store keeps it.
type signingKey struct {
	KSK      bool      `json:"ksk,omitempty"`
	Private  []byte    `json:"private"`  // ECDSA P-256, PKCS #8
	Publish  time.Time `json:"publish"`  // in the DNSKEY set from
	Activate time.Time `json:"activate"` // signs from (a ZSK: until a later ZSK activates)
	// Retire is when a ZSK's successor signs, or when a KSK leaves the DNSKEY set once
	// the parent's DS names its successor; zero: not yet.
	Retire time.Time `json:"retire,omitzero"`
	// A KSK that rolls another in: its CDS and CDNSKEY are published from DSReady
	// (zero: the first KSK, whose DS was given by hand), and the parent's DS was seen
	// to name it at DSSeen (zero: not yet).
	DSReady time.Time `json:"ds_ready,omitzero"`
	DSSeen  time.Time `json:"ds_seen,omitzero"`
}

// removal is when the key leaves the DNSKEY set: a ZSK once every signature it made
// before it retired has expired; a KSK when it retires. Zero: never.
func (k signingKey) removal() time.Time {
	if k.Retire.IsZero() || k.KSK {
		return k.Retire
	}
	return k.Retire.Add(sigValidity)
}

// present reports whether the key is in the DNSKEY set at now.
func (k signingKey) present(now time.Time) bool {
	gone := k.removal()
	return !k.Publish.After(now) && (gone.IsZero() || now.Before(gone))
}

// signingKeys is the ring.
type signingKeys struct {
	Keys []signingKey `json:"keys"`
	// Signing says this build has signed with the keys: switched off, the zones are
	// withdrawn (Withdraw). A ring without it (an earlier build's, whose site turned
	// signing off then) is left alone, and signs nothing.
	Signing bool `json:"signing,omitempty"`
	// Withdraw is signing being switched off: the zones stay signed, with a delete
	// CDS and CDNSKEY (RFC 8078), until the parent's DS is gone; nil: not.
	Withdraw *withdrawal `json:"withdraw,omitempty"`
}

// withdrawal is signing on its way off: from Started the zones carry a delete CDS;
// from dsWait after the parent's DS was seen gone, they are served unsigned.
type withdrawal struct {
	Started time.Time `json:"started"`
	DSGone  time.Time `json:"ds_gone,omitzero"` // the parent's DS was seen gone; zero: not yet
}

// end is when the zones are unsigned; zero: not yet known.
func (w *withdrawal) end() time.Time {
	if w.DSGone.IsZero() {
		return time.Time{}
	}
	return w.DSGone.Add(dsWait)
}

// signs reports whether a withdrawal still signs the zones at at.
func (w *withdrawal) signs(at time.Time) bool {
	end := w.end()
	return end.IsZero() || at.Before(end)
}

// The KSK roll's waits (RFC 6781 §4.1.2, double signature; RFC 7344 for CDS):
// the new KSK signs the DNSKEY set beside the old one from its publication, and its
// CDS and CDNSKEY appear kskPropagation later, once every resolver has the DNSKEY
// set that holds it; the old KSK leaves dsWait after the parent's DS names the new
// one, once every resolver has that DS. A withdrawal ends dsWait after the DS is
// gone.
const (
	kskPropagation = prepublish
	dsWait         = 2 * 24 * time.Hour
)

func newSigningKey(ksk bool, publish, activate time.Time) (signingKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return signingKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return signingKey{}, err
	}
	k := signingKey{KSK: ksk, Private: der, Publish: publish, Activate: activate}
	if !ksk {
		k.Retire = activate.Add(zskLifetime)
	}
	return k, nil
}

// planKeys is the ring as it should be at now: a KSK, rolled when it has signed for
// kskLife (zero: only on command); a ZSK that signs; its successor published
// prepublish before the ZSK retires; and no key past its removal, once the zones are
// signed as of a time past it too (signedAt: the model's; zero: none yet), so that
// what a serial serves never loses a key under it. When the clock has jumped past a
// retirement with no successor published, the ZSK signs on until one has been
// published for prepublish: no key signs before resolvers can know it.
func planKeys(r signingKeys, now time.Time, kskLife time.Duration, signedAt time.Time) (signingKeys, bool, error) {
	now = now.Round(0).UTC() // as the store gives it back
	changed := r.Withdraw != nil
	if r.Withdraw != nil && !r.Withdraw.signs(now) {
		r = signingKeys{} // withdrawn for good: the parent has no DS, so new keys
	}
	r.Withdraw = nil // signing is on
	if !r.Signing {
		r.Signing, changed = true, true
	}
	if kskLife > 0 && !rolling(r.Keys, now) {
		if k := newestKSK(r.Keys); k != nil && !now.Before(k.Activate.Add(kskLife)) {
			next, err := startRoll(r, now)
			if err != nil {
				return r, false, err
			}
			r, changed = next, true
		}
	}
	keys := slices.Clone(r.Keys)
	add := func(ksk bool, publish, activate time.Time) error {
		k, err := newSigningKey(ksk, publish, activate)
		if err == nil {
			keys, changed = append(keys, k), true
		}
		return err
	}
	if !slices.ContainsFunc(keys, func(k signingKey) bool { return k.KSK }) {
		if err := add(true, now, now); err != nil {
			return r, false, err
		}
	}
	cur, next := -1, -1
	for i, k := range keys {
		switch {
		case k.KSK:
		case !k.Activate.After(now):
			if cur < 0 || k.Activate.After(keys[cur].Activate) {
				cur = i
			}
		case next < 0 || k.Activate.Before(keys[next].Activate):
			next = i
		}
	}
	switch {
	case cur < 0 && next < 0:
		if err := add(false, now, now); err != nil { // the first: no resolver knows the zone yet
			return r, false, err
		}
		cur = len(keys) - 1
	case cur >= 0 && next < 0 && !now.Before(keys[cur].Retire.Add(-prepublish)):
		at := keys[cur].Retire
		if earliest := now.Add(prepublish); at.Before(earliest) {
			at = earliest
			keys[cur].Retire = at
		}
		if err := add(false, now, at); err != nil {
			return r, false, err
		}
	}
	kept := keys[:0]
	for i, k := range keys {
		if gone := k.removal(); i == cur || gone.IsZero() || now.Before(gone) || signedAt.Before(gone) {
			kept = append(kept, k)
		} else {
			changed = true
		}
	}
	return signingKeys{Keys: kept, Signing: true}, changed, nil
}

// newestKSK is the KSK made last (the ring keeps its keys in the order they were
// made); nil: none.
func newestKSK(keys []signingKey) *signingKey {
	var out *signingKey
	for i := range keys {
		if keys[i].KSK {
			out = &keys[i]
		}
	}
	return out
}

// rolling reports whether a KSK roll is under way at now: more than one KSK is in
// the DNSKEY set, or will be.
func rolling(keys []signingKey, now time.Time) bool {
	n := 0
	for _, k := range keys {
		if gone := k.removal(); k.KSK && (gone.IsZero() || now.Before(gone)) {
			n++
		}
	}
	return n > 1
}

// ErrKSKStage is a step of the KSK roll asked for at a stage that does not allow it:
// a roll while one is under way or of unsigned zones, a DS said changed with no roll
// or before the CDS asked for it.
var ErrKSKStage = errors.New("not at this stage of the KSK roll")

// stageError is an ErrKSKStage that says why.
type stageError struct{ msg string }

func (e *stageError) Error() string { return e.msg }
func (e *stageError) Unwrap() error { return ErrKSKStage }

// errRolling is a roll asked for while one is under way.
var errRolling error = &stageError{"a KSK roll is under way: finish it (the parent's DS for the new KSK) first"}

// startRoll publishes a new KSK at now, signing the DNSKEY set beside the old one
// (double signature), its CDS and CDNSKEY from kskPropagation later.
func startRoll(r signingKeys, now time.Time) (signingKeys, error) {
	now = now.Round(0).UTC()
	if rolling(r.Keys, now) {
		return r, errRolling
	}
	if r.Withdraw != nil || newestKSK(r.Keys) == nil {
		return r, &stageError{"the zones are not signed: there is no KSK to roll"}
	}
	k, err := newSigningKey(true, now, now)
	if err != nil {
		return r, err
	}
	k.DSReady = now.Add(kskPropagation)
	r.Keys = append(slices.Clone(r.Keys), k)
	return r, nil
}

// confirmDS takes word that the parent's DS changed at now: during a roll, that it
// names the new KSK, which retires the old ones dsWait later; during a withdrawal,
// that it is gone, which ends signing dsWait later.
func confirmDS(r signingKeys, now time.Time) (signingKeys, error) {
	now = now.Round(0).UTC()
	if r.Withdraw != nil {
		w := *r.Withdraw
		if w.DSGone.IsZero() {
			w.DSGone = now
		}
		r.Withdraw = &w
		return r, nil
	}
	keys := slices.Clone(r.Keys)
	next := newestKSK(keys)
	switch {
	case !rolling(keys, now):
		return r, &stageError{"no KSK roll is under way: there is no new DS to wait for"}
	case now.Before(next.DSReady):
		return r, &stageError{fmt.Sprintf("the new KSK's CDS is published from %s: the parent cannot have its DS before then", next.DSReady.Format(time.RFC3339))}
	case !next.DSSeen.IsZero():
		return r, nil // seen already
	}
	next.DSSeen = now
	for i := range keys {
		if keys[i].KSK && &keys[i] != next && keys[i].Retire.IsZero() {
			keys[i].Retire = now.Add(dsWait)
		}
	}
	r.Keys = keys
	return r, nil
}

// planWithdraw is the ring as it should be at now with signing switched off: the
// keys kept, with the withdrawal that says how the zones stop being signed. (The
// keys stay after it ends: the zones' content at an earlier signing time needs them.)
func planWithdraw(r signingKeys, now time.Time) (signingKeys, bool) {
	if len(r.Keys) == 0 || r.Withdraw != nil || !r.Signing {
		return r, false
	}
	r.Withdraw = &withdrawal{Started: now.Round(0).UTC()}
	return r, true
}

// zoneKey is a ring's key ready to sign: its DNSKEY has no owner, which each zone
// gives it.
type zoneKey struct {
	signingKey
	priv   *ecdsa.PrivateKey
	dnskey dns.DNSKEY
	tag    uint16
}

// keySet is the ring, parsed.
type keySet struct {
	keys     []zoneKey
	signing  bool // signingKeys.Signing
	withdraw *withdrawal
}

func parseKeys(r signingKeys) (*keySet, error) {
	ks := &keySet{signing: r.Signing, withdraw: r.Withdraw}
	for _, k := range r.Keys {
		p, err := x509.ParsePKCS8PrivateKey(k.Private)
		if err != nil {
			return nil, fmt.Errorf("a DNSSEC key in the store: %w", err)
		}
		priv, ok := p.(*ecdsa.PrivateKey)
		if !ok || priv.Curve != elliptic.P256() {
			return nil, fmt.Errorf("a DNSSEC key in the store is not ECDSA P-256")
		}
		pub, err := priv.PublicKey.ECDH()
		if err != nil {
			return nil, err
		}
		zk := zoneKey{signingKey: k, priv: priv, dnskey: dns.DNSKEY{
			Hdr:       dns.RR_Header{Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET},
			Flags:     dns.ZONE,
			Protocol:  3,
			Algorithm: dns.ECDSAP256SHA256,
			PublicKey: base64.StdEncoding.EncodeToString(pub.Bytes()[1:]), // X || Y (RFC 6605 §4)
		}}
		if k.KSK {
			zk.dnskey.Flags |= dns.SEP
		}
		zk.tag = zk.dnskey.KeyTag()
		ks.keys = append(ks.keys, zk)
	}
	return ks, nil
}

// signer is the ZSK that signs at now, the one activated last; nil when there is none.
// (The DNSKEY set is signed by every KSK in it: kskSigners.)
func (ks *keySet) signer(now time.Time) *zoneKey {
	var out *zoneKey
	for i := range ks.keys {
		k := &ks.keys[i]
		if k.KSK || k.Activate.After(now) {
			continue
		}
		if out == nil || k.Activate.After(out.Activate) {
			out = k
		}
	}
	return out
}

// kskSigners are the KSKs that sign the DNSKEY set at now: every one in it that is
// active (two while one rolls in).
func (ks *keySet) kskSigners(now time.Time) []*zoneKey {
	var out []*zoneKey
	for i := range ks.keys {
		if k := &ks.keys[i]; k.KSK && !k.Activate.After(now) && k.present(now) {
			out = append(out, k)
		}
	}
	return out
}

// dnskeys is zone's DNSKEY set at now.
func (ks *keySet) dnskeys(zone string, ttl uint32, now time.Time) []dns.RR {
	var out []dns.RR
	for _, k := range ks.keys {
		if !k.present(now) {
			continue
		}
		rr := k.dnskey
		rr.Hdr.Name, rr.Hdr.Ttl = zone, ttl
		out = append(out, &rr)
	}
	return out
}

// state says which keys are published and which sign at at, and what the CDS set
// asks of the parent: two times with the same state sign alike and serve the same.
func (ks *keySet) state(at time.Time) string {
	var b strings.Builder
	for _, k := range ks.dnskeys(".", 0, at) {
		fmt.Fprintf(&b, "%d ", k.(*dns.DNSKEY).KeyTag())
	}
	for _, k := range ks.kskSigners(at) {
		fmt.Fprintf(&b, "/%d", k.tag)
	}
	if k := ks.signer(at); k != nil {
		fmt.Fprintf(&b, "/%d", k.tag)
	}
	for _, rr := range ks.cds(".", 0, at) {
		fmt.Fprintf(&b, " %s", rr.String())
	}
	if ks.withdraw != nil && !ks.withdraw.signs(at) {
		b.WriteString(" unsigned")
	}
	return b.String()
}

// signs reports whether the zones are signed at at, with these keys: when the site
// signs them, and after it stopped until the withdrawal ends (until the withdrawal
// is planned too: a signed zone never goes unsigned before its parent's DS is gone).
// Keys an earlier build left when its site stopped signing sign nothing.
func (ks *keySet) signs(at time.Time, site bool) bool {
	if ks == nil || len(ks.keys) == 0 {
		return false
	}
	return site || ks.signing && (ks.withdraw == nil || ks.withdraw.signs(at))
}

// dsKeys are the KSKs the parent's DS set should name at now: the newest whose CDS is
// published, else the first KSK (its DS given by hand).
func (ks *keySet) dsKeys(now time.Time) []*zoneKey {
	var ready *zoneKey
	var first []*zoneKey
	for i := range ks.keys {
		k := &ks.keys[i]
		switch {
		case !k.KSK || !k.present(now):
		case k.DSReady.IsZero():
			first = append(first, k)
		case !k.DSReady.After(now):
			ready = k // the last made
		}
	}
	if ready != nil {
		return []*zoneKey{ready}
	}
	return first
}

// ds is zone's DS set at now: one SHA-256 digest (RFC 4509) of each KSK the parent
// should name.
func (ks *keySet) ds(zone string, ttl uint32, now time.Time) []dns.RR {
	var out []dns.RR
	for _, k := range ks.dsKeys(now) {
		key := k.dnskey
		key.Hdr.Name, key.Hdr.Ttl = zone, ttl
		if ds := key.ToDS(dns.SHA256); ds != nil {
			out = append(out, ds)
		}
	}
	return out
}

// cds is zone's CDS and CDNSKEY sets at now (RFC 7344): while a new KSK's DS is
// awaited (from its DSReady until the old KSK leaves), that DS and that key; while
// signing is withdrawn, the delete form (RFC 8078 §4); else none.
func (ks *keySet) cds(zone string, ttl uint32, now time.Time) []dns.RR {
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: zone, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	if ks.withdraw != nil && !now.Before(ks.withdraw.Started) {
		return []dns.RR{
			&dns.CDS{DS: dns.DS{Hdr: hdr(dns.TypeCDS), Digest: "00"}},
			&dns.CDNSKEY{DNSKEY: dns.DNSKEY{Hdr: hdr(dns.TypeCDNSKEY), Protocol: 3, PublicKey: "AA=="}},
		}
	}
	keys := ks.dsKeys(now)
	if ks.withdraw != nil || len(keys) != 1 || keys[0].DSReady.IsZero() || len(ks.kskSigners(now)) < 2 {
		return nil
	}
	key := keys[0].dnskey
	key.Hdr.Name, key.Hdr.Ttl = zone, ttl
	ds := key.ToDS(dns.SHA256)
	if ds == nil {
		return nil
	}
	cds := &dns.CDS{DS: *ds}
	cds.Hdr.Rrtype = dns.TypeCDS
	cdnskey := &dns.CDNSKEY{DNSKEY: key}
	cdnskey.Hdr.Rrtype = dns.TypeCDNSKEY
	return []dns.RR{cds, cdnskey}
}

// signer signs RRsets with the ring's keys, keeping each signature for reuse.
type signer struct {
	keys  atomic.Pointer[keySet] // nil: no ring read yet
	cache *cache.Cache[*dns.RRSIG]
	now   func() time.Time
	// synced says whether the clock may be trusted; while not, signing pauses.
	synced  func() (bool, string)
	metrics *metrics
}

func newSigner(now func() time.Time, synced func() (bool, string), m *metrics) *signer {
	if synced == nil {
		synced = func() (bool, string) { return true, "" }
	}
	return &signer{cache: cache.New[*dns.RRSIG](sigCacheSize), now: now, synced: synced, metrics: m}
}

// use takes a ring read from the store.
func (s *signer) use(r signingKeys) error {
	ks, err := parseKeys(r)
	if err != nil {
		return err
	}
	s.keys.Store(ks)
	return nil
}

// appendSigs appends to out the signatures of rrset (one owner, type and TTL) in
// zone: the ZSK's, or for the DNSKEY set each KSK's. A signature is missing when there
// is no key yet, or when signing is paused and none is kept.
func (s *signer) appendSigs(out []dns.RR, rrset []dns.RR, zone string, now time.Time, paused bool) []dns.RR {
	ks := s.keys.Load()
	if ks == nil || len(rrset) == 0 {
		s.metrics.sigsMissing.Inc()
		return out
	}
	if rrset[0].Header().Rrtype == dns.TypeDNSKEY {
		for _, k := range ks.kskSigners(now) {
			if sig := s.sign(rrset, zone, now, paused, k); sig != nil {
				out = append(out, sig)
			}
		}
		return out
	}
	if sig := s.sign(rrset, zone, now, paused, ks.signer(now)); sig != nil {
		out = append(out, sig)
	}
	return out
}

// sign returns k's signature of rrset in zone; nil when k is nil, or when signing is
// paused and no signature is kept.
func (s *signer) sign(rrset []dns.RR, zone string, now time.Time, paused bool, k *zoneKey) *dns.RRSIG {
	if k == nil {
		s.metrics.sigsMissing.Inc()
		return nil
	}
	h := rrset[0].Header()
	inception := uint32(now.Add(-sigBackdate).Unix())
	id := rrsetHash(rrset, zone, k.tag, inception)
	if sig, ok := s.cache.Get(id); ok {
		s.metrics.sigsCached.Inc()
		return sig
	}
	if paused {
		s.metrics.sigsMissing.Inc()
		return nil
	}
	sig := &dns.RRSIG{
		Hdr:        dns.RR_Header{Name: h.Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: h.Ttl},
		Algorithm:  dns.ECDSAP256SHA256,
		Inception:  inception,
		Expiration: uint32(now.Add(sigValidity).Unix()),
		KeyTag:     k.tag,
		SignerName: zone,
	}
	if err := sig.Sign(deterministic{k.priv}, rrset); err != nil {
		s.metrics.sigsMissing.Inc()
		return nil
	}
	s.cache.Add(id, sig)
	s.metrics.sigsMade.Inc()
	return sig
}

// deterministic signs as RFC 6979 has ECDSA sign: the same key, data and times make
// the same signature, on every box and after every restart, so what a zone serves at
// a serial is one thing (miekg/dns passes a random source; crypto/ecdsa signs
// deterministically without one).
type deterministic struct{ *ecdsa.PrivateKey }

func (d deterministic) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return d.PrivateKey.Sign(nil, digest, opts)
}

// rrsetHash names rrset, signed in zone by the key tagged tag from inception, in the
// cache: the same RRs in any order are the same set.
func rrsetHash(rrset []dns.RR, zone string, tag uint16, inception uint32) uint64 {
	wires := make([][]byte, 0, len(rrset))
	for _, rr := range rrset {
		b := make([]byte, dns.Len(rr)+1)
		if n, err := dns.PackRR(rr, b, 0, nil, false); err == nil {
			wires = append(wires, b[:n])
		}
	}
	slices.SortFunc(wires, bytes.Compare)
	h := fnv.New64a()
	h.Write([]byte(zone))
	h.Write(binary.BigEndian.AppendUint16(nil, tag))
	h.Write(binary.BigEndian.AppendUint32(nil, inception))
	for _, w := range wires {
		h.Write(w)
	}
	return h.Sum64()
}

// signReply adds to m, the answer to a query for qname in zone from v, what a
// validating resolver needs: a signature for each RRset of ours, and for an answer
// that has no RRset of qtype, the NSEC that proves it (RFC 9824).
func (s *signer) signReply(v *view, m *dns.Msg, qname string, qtype uint16) {
	now := v.signedAt()
	ok, _ := s.synced()
	paused := !ok
	final := qname // the name the answer ends at, past its CNAMEs
	for _, rr := range m.Answer {
		if c, ok := rr.(*dns.CNAME); ok && c.Hdr.Name == final {
			final = dns.CanonicalName(c.Target)
		}
	}
	negative := m.Rcode == dns.RcodeNameError ||
		(m.Rcode == dns.RcodeSuccess && len(m.Ns) > 0 && m.Ns[0].Header().Rrtype == dns.TypeSOA &&
			!slices.ContainsFunc(m.Answer, func(rr dns.RR) bool { return rr.Header().Name == final && rr.Header().Rrtype == qtype }))
	if zone := v.zoneOf(final); negative && zone != "" {
		types := []uint16{dns.TypeRRSIG, dns.TypeNSEC}
		if m.Rcode == dns.RcodeNameError {
			types = append(types, typeNXNAME)
			m.Rcode = dns.RcodeSuccess // NODATA in form, with the NXNAME bit saying why
		} else {
			n, ok := v.node(final)
			if !ok {
				n, _ = v.wildcard(final, zone)
			}
			for t := range n {
				types = append(types, t)
			}
		}
		slices.Sort(types)
		next := "\\000." + final // the name's immediate successor (RFC 4034 §6.1)
		if len(final) > 252 {    // too long for one more label: the NSEC covers the name alone
			next = final
		}
		m.Ns = append(m.Ns, &dns.NSEC{Hdr: v.hdr(final, dns.TypeNSEC, m.Ns[0].Header().Ttl),
			NextDomain: next, TypeBitMap: slices.Compact(types)})
	}
	m.Answer = s.signSection(v, m.Answer, now, paused)
	m.Ns = s.signSection(v, m.Ns, now, paused)
	m.Extra = s.signSection(v, m.Extra, now, paused)
}

// signSection returns rrs with the signature of each of its RRsets of our zones after it.
func (s *signer) signSection(v *view, rrs []dns.RR, now time.Time, paused bool) []dns.RR {
	if len(rrs) == 0 {
		return rrs
	}
	out := make([]dns.RR, 0, 2*len(rrs))
	for i := 0; i < len(rrs); {
		h := rrs[i].Header()
		j := i + 1
		for j < len(rrs) && rrs[j].Header().Name == h.Name && rrs[j].Header().Rrtype == h.Rrtype {
			j++
		}
		out = append(out, rrs[i:j]...)
		zone := v.zoneOf(h.Name)
		if h.Rrtype == dns.TypeDS && zone == h.Name {
			zone = v.zoneOf(parent(h.Name)) // a DS set is its parent zone's
		}
		if zone != "" && h.Rrtype != dns.TypeOPT && h.Rrtype != dns.TypeRRSIG {
			out = s.appendSigs(out, rrs[i:j], zone, now, paused)
		}
		i = j
	}
	return out
}

// parentDS answers in m a query for the DS set of name when name is the apex of one
// of our zones and the zone above it is ours too: a DS set belongs to the parent
// (RFC 4035 §2.4), which holds it at the delegation, so a resolver that trusts only
// the parent follows the chain down. It reports whether it answered.
func (v *view) parentDS(m *dns.Msg, name string) bool {
	if v.dnssec == nil || !v.isZone(name) {
		return false
	}
	up := v.zoneOf(parent(name))
	ks := v.dnssec.keys.Load()
	if up == "" || ks == nil {
		return false
	}
	m.Authoritative = true
	m.Answer = append(m.Answer, ks.ds(name, v.m.TTL(), v.signedAt())...)
	return true
}

// signZone returns zone's transfer, signed: its RRsets (SOA first), each with its
// signature, and the NSEC chain through its names in canonical order (RFC 4034 §6.1).
// The delegations to zones of ours below it are not signed; their DS sets are.
func (s *signer) signZone(v *view, zone string) []dns.RR {
	now := v.signedAt()
	ok, _ := s.synced()
	paused := !ok
	nodes := map[string]ipam.RRsets{}
	add := func(rr dns.RR) {
		name := dns.CanonicalName(rr.Header().Name)
		n := nodes[name]
		if n == nil {
			n = ipam.RRsets{}
			nodes[name] = n
		}
		n.Add(rr)
	}
	add(v.soa(zone, v.m.TTL()))
	v.eachRRs(zone, func(rrs []dns.RR) {
		for _, rr := range rrs {
			add(rr)
		}
	})
	// The cuts: our zones below this one, which its delegations name.
	var cuts []string
	for _, child := range v.m.Zones() {
		if child != zone && dns.IsSubDomain(zone, child) && nodes[child] != nil {
			cuts = append(cuts, child)
			if ks := s.keys.Load(); ks != nil {
				for _, ds := range ks.ds(child, v.m.TTL(), now) {
					add(ds)
				}
			}
		}
	}
	below := func(name string) bool { // at or below a cut
		return slices.ContainsFunc(cuts, func(c string) bool { return dns.IsSubDomain(c, name) })
	}
	names := make([]string, 0, len(nodes)) // the zone's own names and its cuts: not the glue below them
	for name := range nodes {
		if !below(name) || slices.Contains(cuts, name) {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, canonicalCompare)
	nsecTTL := min(v.m.TTL(), negTTL)
	out := make([]dns.RR, 0, 4*len(names))
	for i, name := range names {
		n := nodes[name]
		cut := slices.Contains(cuts, name)
		types := []uint16{dns.TypeRRSIG, dns.TypeNSEC}
		for t := range n {
			types = append(types, t)
		}
		slices.Sort(types)
		next := names[(i+1)%len(names)]
		n.Add(&dns.NSEC{Hdr: v.hdr(name, dns.TypeNSEC, nsecTTL), NextDomain: next, TypeBitMap: types})
		order := make([]uint16, 0, len(n))
		for t := range n {
			order = append(order, t)
		}
		slices.Sort(order)
		if name == zone { // the SOA first: a transfer begins with it
			order = slices.DeleteFunc(order, func(t uint16) bool { return t == dns.TypeSOA })
			order = slices.Insert(order, 0, dns.TypeSOA)
		}
		for _, t := range order {
			out = append(out, n[t]...)
			if cut && t != dns.TypeDS && t != dns.TypeNSEC {
				continue // a delegation's NS is the child's, and not signed here
			}
			out = s.appendSigs(out, n[t], zone, now, paused)
		}
	}
	for name, n := range nodes { // the glue below the cuts, unsigned
		if below(name) && !slices.Contains(cuts, name) {
			for _, rrs := range n {
				out = append(out, rrs...)
			}
		}
	}
	return out
}

// canonicalCompare orders names as DNSSEC does (RFC 4034 §6.1): by their labels from
// the root, each compared as lower-case octets.
func canonicalCompare(a, b string) int {
	la, lb := dns.SplitDomainName(dns.CanonicalName(a)), dns.SplitDomainName(dns.CanonicalName(b))
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if c := bytes.Compare(labelOctets(la[i]), labelOctets(lb[j])); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}

// labelOctets is a label's octets, its presentation escapes (\DDD, \X) undone.
func labelOctets(l string) []byte {
	out := make([]byte, 0, len(l))
	for i := 0; i < len(l); i++ {
		c := l[i]
		if c == '\\' && i+3 < len(l) && isDigit(l[i+1]) && isDigit(l[i+2]) && isDigit(l[i+3]) {
			out = append(out, (l[i+1]-'0')*100+(l[i+2]-'0')*10+(l[i+3]-'0'))
			i += 3
			continue
		}
		if c == '\\' && i+1 < len(l) {
			i++
			c = l[i]
		}
		out = append(out, c)
	}
	return out
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
