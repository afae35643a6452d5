package dns

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/pkg/ipam"
)

// The answer cache: the zones' answers to plain UDP queries, kept in wire form per
// (name, type, EDNS, DO) and answered from the query's bytes, unparsed: a hit copies
// the reply and writes the query's ID, flags and question (its letters' case) into it.
// The cache belongs to one version of what the zones serve, the zones' serial (every
// change of what they serve raises it: data, settings, signatures) with the signing
// keys and whether the zones are signed; a query that sees another version starts a
// new cache. Only authoritative answers (NOERROR, NXDOMAIN) are kept; a query with
// anything else (TSIG, an opcode other than QUERY, EDNS other than version 0, more
// records) takes the whole path, as does every query while the node does not answer
// from its model. Rate limiting and the metrics count every query alike.

const (
	cacheShards     = 16
	maxCacheEntries = 32768 // a generation's entries; past it, answers are made, not kept
	maxCachedReply  = maxUDPSize
)

// answers is the cache of one version of the zones.
type answers struct {
	gen     generation
	entries atomic.Int64
	seed    maphash.Seed
	shards  [cacheShards]struct {
		mu sync.RWMutex
		m  map[string][]byte
	}
}

// generation is what a cached answer was made from.
type generation struct {
	serial uint32
	signed bool
	keys   *keySet
}

func newAnswers(gen generation) *answers {
	a := &answers{gen: gen, seed: maphash.MakeSeed()}
	for i := range a.shards {
		a.shards[i].m = map[string][]byte{}
	}
	return a
}

func (a *answers) shard(key []byte) int { return int(maphash.Bytes(a.seed, key) % cacheShards) }

func (a *answers) get(key []byte) []byte {
	s := &a.shards[a.shard(key)]
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[string(key)]
}

func (a *answers) put(key, reply []byte) {
	if a.entries.Load() >= maxCacheEntries {
		return
	}
	s := &a.shards[a.shard(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[string(key)]; !ok {
		s.m[string(key)] = reply
		a.entries.Add(1)
	}
}

// answerCache is the cache of what the zones serve now, for a query of DO do; nil when a
// reply may not come from a cache: the zones are signed as of the clock (no signing
// time is set yet), or signing is paused (what is signed then depends on which
// signatures were kept).
func (s *Service) answerCache(m *ipam.Model, do bool) *answers {
	gen := generation{serial: m.Serial()}
	if s.cfg.Load().dnssec {
		gen.signed, gen.keys = true, s.signer.keys.Load()
		if m.SignedAt().IsZero() {
			return nil
		}
		if do {
			if ok, _ := s.signer.synced(); !ok {
				return nil
			}
		}
	}
	for {
		a := s.cache.Load()
		if a != nil && a.gen == gen {
			return a
		}
		if next := newAnswers(gen); s.cache.CompareAndSwap(a, next) {
			return next
		}
	}
}

// plainQuery is what the cache reads of a query's bytes.
type plainQuery struct {
	key    []byte // the name in lower case, the type, and the EDNS flags
	qEnd   int    // where the question ends
	qtype  uint16
	size   int // the most the reply may take
	do     bool
	usable bool // a plain query: a cache's answer may do
}

// cacheKeyLen is the most a key takes: a name, a type, a flag.
const cacheKeyLen = 255 + 3

// readPlain reads b as a plain query: opcode QUERY, one question of class IN, no
// other record but an OPT of version 0. The key is written into buf.
func readPlain(b []byte, buf []byte) plainQuery {
	var q plainQuery
	if len(b) < 12+5 || b[2]&0xf8 != 0 || // QR, opcode
		binary.BigEndian.Uint16(b[4:]) != 1 || binary.BigEndian.Uint16(b[6:]) != 0 || binary.BigEndian.Uint16(b[8:]) != 0 {
		return q
	}
	arcount := binary.BigEndian.Uint16(b[10:])
	if arcount > 1 {
		return q
	}
	key := buf[:0]
	off := 12
	for {
		if off >= len(b) {
			return q
		}
		n := int(b[off])
		if n&0xc0 != 0 || off+1+n > len(b) || len(key)+1+n > 255 {
			return q
		}
		key = append(key, b[off])
		for _, c := range b[off+1 : off+1+n] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			key = append(key, c)
		}
		off += 1 + n
		if n == 0 {
			break
		}
	}
	if off+4 > len(b) || binary.BigEndian.Uint16(b[off+2:]) != dns.ClassINET {
		return q
	}
	q.qtype = binary.BigEndian.Uint16(b[off:])
	off += 4
	q.qEnd = off
	flags := byte(0)
	q.size = dns.MinMsgSize
	if arcount == 1 { // an OPT: root name, type OPT, class the UDP size, TTL the version and DO
		if off+11 > len(b) || b[off] != 0 || binary.BigEndian.Uint16(b[off+1:]) != dns.TypeOPT || b[off+6] != 0 {
			return q
		}
		q.size = min(max(int(binary.BigEndian.Uint16(b[off+3:])), dns.MinMsgSize), maxUDPSize)
		q.do = b[off+7]&0x80 != 0
		flags = 1
		if q.do {
			flags |= 2
		}
		off += 11 + int(binary.BigEndian.Uint16(b[off+9:]))
	}
	if off != len(b) || q.qtype == dns.TypeAXFR || q.qtype == dns.TypeIXFR {
		return q
	}
	q.key = append(key, byte(q.qtype>>8), byte(q.qtype), flags)
	q.usable = true
	return q
}

// fromCache answers the plain query q, whose bytes are b, from the cache into w.out,
// and reports whether it did (or dropped it, rate-limited).
func (h *handler) fromCache(b []byte, q *plainQuery, a *answers, w *replyWriter) bool {
	reply := a.get(q.key)
	if reply == nil || len(reply) > q.size {
		return false
	}
	start := time.Now()
	if !h.svc.cfg.Load().rrl.Allow(clientAddr(w.RemoteAddr()), start) {
		h.svc.metrics.limited.Inc()
		h.svc.metrics.observe(q.qtype, dns.RcodeRefused, time.Since(start))
		return true
	}
	out := append(w.out[:0], reply...)
	copy(out[0:2], b[0:2])             // the ID
	out[2] = out[2]&^0x01 | b[2]&0x01  // RD, as asked
	out[3] = out[3]&^0x10 | b[3]&0x10  // CD, as asked
	copy(out[12:q.qEnd], b[12:q.qEnd]) // the question, in the client's case
	w.out = out
	h.svc.metrics.observe(q.qtype, int(out[3]&0x0f), time.Since(start))
	return true
}

// keep puts into a the reply just written for the plain query q when it may answer
// the same query again: authoritative, whole, NOERROR or NXDOMAIN.
func keep(a *answers, q *plainQuery, reply []byte) {
	if len(reply) < 12 || len(reply) > maxCachedReply || reply[2]&0x04 == 0 || reply[2]&0x02 != 0 {
		return
	}
	if rcode := reply[3] & 0x0f; rcode != dns.RcodeSuccess && rcode != dns.RcodeNameError {
		return
	}
	a.put(append([]byte(nil), q.key...), append([]byte(nil), reply...))
}
