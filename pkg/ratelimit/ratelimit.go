// Package ratelimit limits what each client may ask for: a token bucket per key (a
// client's address, a MAC, a relay), refilled at a steady rate, holding a burst.
//
// A Limiter keeps at most Keys buckets, the most recently used: a flood from spoofed
// sources (a million addresses a minute on a LAN) costs it no more memory than Keys
// clients do. A client forgotten to make room starts again with a full bucket, so the
// cap can let a client through, never hold one back.
package ratelimit

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"
)

// Keys is how many clients a Limiter remembers at most, each in about 200 bytes: 3 MB
// a table, and more clients than an edge site's LAN has.
const Keys = 1 << 14

// idle is how long a client's bucket is kept after its last request (a full bucket
// by then at any rate a site file allows).
const idle = time.Minute

// Limiter allows each key rate events a second, and burst at once. A zero rate allows
// everything.
type Limiter[K comparable] struct {
	rate, burst float64
	evicted     prometheus.Counter // clients forgotten to make room; nil counts nothing

	mu sync.Mutex
	by *simplelru.LRU[K, *bucket] // the least recently used first to go
}

type bucket struct {
	tokens float64
	at     time.Time
}

// New returns a Limiter of rate events a second and twice that at once, the burst
// every limit of a site file allows, remembering at most Keys clients; evicted (if
// not nil) counts those it forgets to make room. A rate of 0 allows everything.
func New[K comparable](rate int, evicted prometheus.Counter) *Limiter[K] {
	return newSized[K](rate, Keys, evicted)
}

func newSized[K comparable](rate, keys int, evicted prometheus.Counter) *Limiter[K] {
	by, err := simplelru.NewLRU[K, *bucket](keys, nil)
	if err != nil {
		panic(err) // keys > 0 here
	}
	return &Limiter[K]{rate: float64(rate), burst: max(2*float64(rate), 1), evicted: evicted, by: by}
}

// Allow takes a token of k's bucket at now, and reports whether there was one.
func (l *Limiter[K]) Allow(k K, now time.Time) bool {
	if l == nil || l.rate == 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Forget a client or two idle for a minute: a little each time, never a sweep of
	// the whole table under the lock.
	for range 2 {
		if _, b, ok := l.by.GetOldest(); !ok || now.Sub(b.at) <= idle {
			break
		}
		l.by.RemoveOldest()
	}
	b, ok := l.by.Get(k)
	if !ok {
		b = &bucket{tokens: l.burst, at: now}
		if l.by.Add(k, b) && l.evicted != nil {
			l.evicted.Inc()
		}
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Len is how many clients l remembers.
func (l *Limiter[K]) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.by.Len()
}

// Evictions is the counter of the clients a service's table named table forgot to
// make room, for New: infrad_ratelimit_evictions_total{table=...}. Its owner registers
// it, once, and keeps it across the Limiters a reload makes.
func Evictions(table string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Name:        "infrad_ratelimit_evictions_total",
		Help:        "Clients a rate limiter forgot, least recently seen first, to stay within its fixed size (a flood from many sources, or more clients than it keeps).",
		ConstLabels: prometheus.Labels{"table": table},
	})
}
