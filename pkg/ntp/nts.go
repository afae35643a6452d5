package ntp

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin/pkg/cache"
	"github.com/facebook/time/ntp/ntske"
	"github.com/facebook/time/ntp/protocol"
	"github.com/facebook/time/ntp/protocol/nts"
	"github.com/facebook/time/ntp/protocol/nts/aessiv"
)

// NTS (RFC 8915, ntp.nts: true): a client first runs the key establishment (NTS-KE)
// over TLS 1.3, from ntske.Server with a certificate from the site's CA, and takes
// away session keys and cookies; then it sends NTP requests to the ordinary NTP
// sockets carrying a cookie and an authenticator, and gets authenticated replies
// with fresh cookies. A cookie is the session keys sealed under one of the cookie
// keys, which are a key ring in the store ("nts"): every box of a cluster opens
// the cookies of the others. A new cookie key is made each cookieRotate and seals
// from cookieLead later, when every box has read it; keys are kept cookieKeep,
// long past the time a client holds a cookie (it spends one per request).

// ringName is the cookie keys' ring in the store.
const ringName = "nts"

const (
	cookieRotate = 24 * time.Hour
	cookieLead   = time.Minute
	cookieKeep   = 3 * 24 * time.Hour
)

// cookieKey is one key of the ring, as the store keeps it.
type cookieKey struct {
	ID      uint32    `json:"id"`
	Key     []byte    `json:"key"` // AES-256-GCM: 32 octets
	Created time.Time `json:"created"`
	Seal    time.Time `json:"seal"` // seals cookies from
}

// cookieKeys is the ring.
type cookieKeys struct {
	Keys []cookieKey `json:"keys"`
}

// planCookieKeys is the ring as it should be at now: a key made at most cookieRotate
// ago, and none older than cookieKeep, save the one that seals.
func planCookieKeys(r cookieKeys, now time.Time) (cookieKeys, bool, error) {
	now = now.Round(0).UTC()
	keys, changed := slices.Clone(r.Keys), false
	last := uint32(0)
	var newest time.Time
	for _, k := range keys {
		last = max(last, k.ID)
		if k.Created.After(newest) {
			newest = k.Created
		}
	}
	if len(keys) == 0 || !now.Before(newest.Add(cookieRotate)) {
		k := cookieKey{ID: last + 1, Key: make([]byte, 32), Created: now, Seal: now.Add(cookieLead)}
		if len(keys) == 0 {
			k.Seal = now // the first: no cookie exists for another box to open
		}
		if _, err := rand.Read(k.Key); err != nil {
			return r, false, err
		}
		keys, changed = append(keys, k), true
	}
	sealing := sealer(keys, now)
	kept := keys[:0]
	for _, k := range keys {
		if k.ID == sealing || now.Before(k.Created.Add(cookieKeep)) {
			kept = append(kept, k)
		} else {
			changed = true
		}
	}
	return cookieKeys{Keys: kept}, changed, nil
}

// sealer is the ID of the key that seals at now: the last made whose time has come.
func sealer(keys []cookieKey, now time.Time) uint32 {
	var id uint32
	var at time.Time
	for _, k := range keys {
		if !k.Seal.After(now) && (id == 0 || k.Seal.After(at)) {
			id, at = k.ID, k.Seal
		}
	}
	return id
}

// keystore seals and opens cookies with the ring's keys. It is an ntske.Keystore. A
// cookie is only ever opened by a box of the site, so its form is infrad's own: the
// key's ID, a random 12-octet nonce, and the session keys sealed with AES-256-GCM, the
// key ID as associated data. ntske's keystore sealed with AES-SIV-CMAC-512 (tink),
// whose every call made its AES ciphers anew: a third of an NTS reply's cost.
type keystore struct {
	keys     atomic.Pointer[sealers]
	now      func() time.Time
	sessions *cache.Cache[*session]
}

// session is one client's pair of session ciphers, kept by the hash of its keys: a
// client spends a new cookie on each request, but every cookie holds the keys of
// its NTS-KE session, and making the ciphers anew for each request was a third of
// an NTS reply's cost.
type session struct {
	c2s, s2c []byte
	in, out  nts.AEAD
}

// sessionsKept bounds the sessions kept; past it, a client's ciphers are made anew.
const sessionsKept = 16384

func newKeystore() *keystore {
	return &keystore{now: time.Now, sessions: cache.New[*session](sessionsKept)}
}

// session returns the ciphers of the session whose keys are c2s and s2c.
func (ks *keystore) session(id protocol.AEADAlgorithm, c2s, s2c []byte) (*session, error) {
	h := fnv.New64a()
	h.Write([]byte{byte(id)})
	h.Write(c2s)
	h.Write(s2c)
	key := h.Sum64()
	if s, ok := ks.sessions.Get(key); ok && bytes.Equal(s.c2s, c2s) && bytes.Equal(s.s2c, s2c) {
		return s, nil
	}
	in, err := newAEAD(id, c2s)
	if err != nil {
		return nil, err
	}
	out, err := newAEAD(id, s2c)
	if err != nil {
		return nil, err
	}
	s := &session{c2s: c2s, s2c: s2c, in: in, out: out}
	ks.sessions.Add(key, s)
	return s, nil
}

// sealers is the ring with each key's cipher.
type sealers struct {
	keys []cookieKey
	gcm  map[uint32]cipher.AEAD
}

var _ ntske.Keystore = (*keystore)(nil)

var errNoCookieKey = errors.New("nts: no cookie key yet")

// use takes a ring read from the store.
func (ks *keystore) use(r cookieKeys) error {
	s := &sealers{keys: r.Keys, gcm: make(map[uint32]cipher.AEAD, len(r.Keys))}
	for _, k := range r.Keys {
		block, err := aes.NewCipher(k.Key)
		if err != nil {
			return fmt.Errorf("nts: cookie key %d: %w", k.ID, err)
		}
		if s.gcm[k.ID], err = cipher.NewGCM(block); err != nil {
			return err
		}
	}
	ks.keys.Store(s)
	return nil
}

// cookieHead is what a cookie holds before its sealed keys: the key ID and the nonce.
const cookieHead = 4 + 12

func (ks *keystore) SealCookie(aeadID protocol.AEADAlgorithm, c2s, s2c []byte) ([]byte, error) {
	r := ks.keys.Load()
	if r == nil {
		return nil, errNoCookieKey
	}
	id := sealer(r.keys, ks.now())
	gcm := r.gcm[id]
	if gcm == nil {
		return nil, errNoCookieKey
	}
	out := make([]byte, cookieHead, cookieHead+len(c2s)+len(s2c)+gcm.Overhead())
	binary.BigEndian.PutUint32(out, id)
	rand.Read(out[4:cookieHead])
	keys := append(append(make([]byte, 0, len(c2s)+len(s2c)), c2s...), s2c...)
	return gcm.Seal(out, out[4:cookieHead], keys, out[:4]), nil
}

func (ks *keystore) OpenCookie(cookie []byte) (protocol.AEADAlgorithm, []byte, []byte, error) {
	if len(cookie) < cookieHead+16 {
		return 0, nil, nil, ntske.ErrCookieTooShort
	}
	id := binary.BigEndian.Uint32(cookie)
	var gcm cipher.AEAD
	if r := ks.keys.Load(); r != nil {
		gcm = r.gcm[id]
	}
	if gcm == nil {
		return 0, nil, nil, fmt.Errorf("%w: %d", ntske.ErrUnknownKeyID, id)
	}
	pt, err := gcm.Open(nil, cookie[4:cookieHead], cookie[cookieHead:], cookie[:4])
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: %w", ntske.ErrCookieVerify, err)
	}
	var aead protocol.AEADAlgorithm
	switch len(pt) / 2 {
	case 16:
		aead = protocol.AEADAES128GCMSIV
	case 32:
		aead = protocol.AEADAESSIVCMAC256
	case 64:
		aead = protocol.AEADAESSIVCMAC512
	default:
		return 0, nil, nil, ntske.ErrCookieMalformed
	}
	n := len(pt) / 2
	return aead, pt[:n:n], pt[n:], nil
}

// errCookie is an NTS request whose cookie this server cannot open: the client gets
// an NTS NAK, and runs NTS-KE again.
var errCookie = errors.New("nts: the cookie cannot be opened")

// maxCookies bounds the fresh cookies a reply carries, however many placeholders
// the request sent: the reply is no larger than the request.
const maxCookies = 8

// authenticate checks the NTS request req (RFC 8915 §5.7) and makes resp, whose
// header is set, its authenticated answer: the request's Unique Identifier echoed, and
// fresh cookies sealed in the authenticator. An error other than errCookie means the
// request is dropped.
func (ks *keystore) authenticate(req, resp *protocol.Packet) error {
	var uid, cookie []byte
	placeholders, auth := 0, -1
	for i, ef := range req.ExtensionFields {
		switch ef.Type {
		case protocol.UniqueIdentifier:
			if uid != nil || len(ef.Body) < nts.MinUniqueIdentifierLen {
				return errors.New("nts: a short or second unique identifier")
			}
			uid = ef.Body
		case protocol.NTSCookie:
			if cookie != nil {
				return errors.New("nts: two cookies")
			}
			cookie = ef.Body
		case protocol.NTSCookiePlaceholder:
			if cookie != nil && len(ef.Body) == len(cookie) {
				placeholders++
			}
		case protocol.NTSAuthenticator:
			auth = i
		}
		if auth >= 0 {
			break // what follows the authenticator is not authenticated: ignored (§5.7)
		}
	}
	if uid == nil || cookie == nil || auth < 0 {
		return errors.New("nts: a request without unique identifier, cookie or authenticator")
	}
	aeadID, c2s, s2c, err := ks.OpenCookie(cookie)
	if err != nil {
		resp.ExtensionFields = []protocol.ExtensionField{nts.NewUniqueIdentifier(uid)}
		return fmt.Errorf("%w: %w", errCookie, err)
	}
	ad, err := req.AssociatedData(auth)
	if err != nil {
		return err
	}
	sess, err := ks.session(aeadID, c2s, s2c)
	if err != nil {
		return err
	}
	if _, err := nts.OpenAuthenticator(sess.in, ad, req.ExtensionFields[auth]); err != nil {
		return err
	}
	fresh := make([]protocol.ExtensionField, 0, 1+placeholders)
	for range min(1+placeholders, maxCookies) {
		c, err := ks.SealCookie(aeadID, c2s, s2c)
		if err != nil {
			return err
		}
		fresh = append(fresh, nts.NewCookie(c))
	}
	sealed, err := protocol.MarshalExtensionFields(fresh)
	if err != nil {
		return err
	}
	resp.ExtensionFields = []protocol.ExtensionField{nts.NewUniqueIdentifier(uid)}
	ad, err = resp.AssociatedData(1)
	if err != nil {
		return err
	}
	a, err := nts.SealAuthenticator(sess.out, ad, sealed)
	if err != nil {
		return err
	}
	resp.ExtensionFields = append(resp.ExtensionFields, a)
	return nil
}

// keyCheck is how often the cookie keys are read, and rotated when due.
const keyCheck = 15 * time.Second

// startNTS reads the cookie keys and serves NTS-KE on each of the site's addresses
// until loop ends, telling clients to send NTP to the port of conns. s.mu is held.
// A box that cannot store the first keys (a cluster without its quorum) serves
// NTS-KE all the same, refusing handshakes until the keeper has stored them.
func (s *Service) startNTS(ctx, loop context.Context, conns []*net.UDPConn) error {
	if len(s.ntsOn) == 0 {
		return nil
	}
	if s.ntsKeys == nil || s.ntsTLS == nil {
		return errors.New("ntp.nts: this NTP service has no store for its cookie keys, or no CA")
	}
	if err := s.ntsKeys.Refresh(ctx); err != nil {
		s.log.Warn("nts: the cookie keys", "err", err)
	}
	var port uint16 // 0: the default, 123, which the client assumes
	if len(conns) > 0 {
		if p := conns[0].LocalAddr().(*net.UDPAddr).Port; p != 123 {
			port = uint16(p)
		}
	}
	servers := make([]*ntske.Server, 0, len(s.ntsOn))
	for _, addr := range s.ntsOn {
		ln, err := net.Listen("tcp", addr.String()) // taken: fail here, not in the server's goroutine
		if err != nil {
			return fmt.Errorf("nts-ke listen %s: %w", addr, err)
		}
		ln.Close()
		conf, err := s.ntsTLS(addr.Addr())
		if err != nil {
			return fmt.Errorf("nts-ke's certificate: %w", err)
		}
		servers = append(servers, &ntske.Server{TLSConfig: conf, Keystore: s.nts, SupportedAEAD: aeads, NTPv4Port: port, Stats: s.metrics})
	}
	for i, srv := range servers {
		addr := s.ntsOn[i]
		s.loops.Go(func() {
			if err := srv.ListenAndServe(loop, addr.String()); err != nil {
				s.health.Fail("nts-ke "+addr.String(), err.Error())
			}
		})
	}
	for _, addr := range s.ntsOn { // Start returns once NTS-KE accepts, as NTP and DNS do
		for deadline := time.Now().Add(2 * time.Second); !listening(addr.Port()) && time.Now().Before(deadline); {
			time.Sleep(2 * time.Millisecond)
		}
		s.log.Info("nts-ke listening", "addr", addr.String())
	}
	s.loops.Go(func() { s.ntsKeys.Run(loop, keyCheck) })
	return nil
}

// listening reports whether a TCP socket of this machine listens on port, from
// Linux's /proc/net/tcp and tcp6, without connecting to it: ntske.Server binds in a
// goroutine of its own, and a connection to see would count as a failed handshake.
// Where it cannot tell, it says yes.
func listening(port uint16) bool {
	suffix := fmt.Sprintf(":%04X", port)
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			return true
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 3 && strings.HasSuffix(f[1], suffix) && f[3] == "0A" { // 0A: LISTEN
				return true
			}
		}
	}
	return false
}

// authenticated makes resp the NTS answer to req, or an NTS NAK when req's cookie
// cannot be opened; nil drops the request.
func (s *Service) authenticated(req, resp *protocol.Packet) *protocol.Packet {
	err := s.nts.authenticate(req, resp)
	switch {
	case err == nil:
		s.metrics.ntsReplies.Inc()
		return resp
	case errors.Is(err, errCookie):
		s.metrics.ntsNAKs.Inc()
		nak := kissOfDeath(req, "NTSN") // RFC 8915 §5.7: the client runs NTS-KE again
		nak.ExtensionFields = resp.ExtensionFields
		return nak
	}
	s.metrics.dropped.Inc()
	return nil
}

// aeads are the session algorithms NTS-KE agrees to, in order of preference:
// AES-128-GCM-SIV and AES-SIV-CMAC-256 (chrony's choices). AES-SIV-CMAC-512 is left
// out: facebook/time's refuses the authenticator's nonce, as it did for 256 (newAEAD).
var aeads = []uint16{uint16(protocol.AEADAES128GCMSIV), uint16(protocol.AEADAESSIVCMAC256)}

// newAEAD is nts.NewAEAD, save that AES-SIV-CMAC-256 takes the nonce an
// authenticator carries (RFC 8915 §5.6) as the last associated-data component before
// the plaintext (RFC 5297 §3), as chrony sends it and expects it, with a nonce of
// its own for each reply. facebook/time's refuses any nonce, which failed every
// request from chrony.
func newAEAD(id protocol.AEADAlgorithm, key []byte) (nts.AEAD, error) {
	if id != protocol.AEADAESSIVCMAC256 {
		return nts.NewAEAD(id, key)
	}
	siv, err := aessiv.NewAESSIV(key)
	if err != nil {
		return nil, err
	}
	return sivNonce{siv}, nil
}

type sivNonce struct{ siv *aessiv.AESSIV }

func (a sivNonce) Seal(ad, plaintext []byte) ([]byte, []byte, error) {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	ct, err := a.siv.Seal(nil, plaintext, ad, nonce)
	return nonce, ct, err
}

func (a sivNonce) Open(ad, nonce, ciphertext []byte) ([]byte, error) {
	if len(nonce) == 0 {
		return a.siv.Open(nil, ciphertext, ad)
	}
	return a.siv.Open(nil, ciphertext, ad, nonce)
}
