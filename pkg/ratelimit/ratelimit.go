// Package ratelimit limits what each client may ask for: a token bucket per key (a
// client's address, a MAC, a relay), refilled at a steady rate, holding a burst.
package ratelimit

import (
	"sync"
	"time"
)

// Limiter allows each key rate events a second, and burst at once. A zero rate allows
// everything. Keys idle for a minute are forgotten.
type Limiter[K comparable] struct {
	rate, burst float64

	mu    sync.Mutex
	swept time.Time // the last sweep of idle keys
	by    map[K]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// New returns a Limiter of rate events a second and twice that at once, the burst
// every limit of a site file allows. A rate of 0 allows everything.
func New[K comparable](rate int) *Limiter[K] {
	return &Limiter[K]{rate: float64(rate), burst: max(2*float64(rate), 1), by: map[K]*bucket{}}
}

// Allow takes a token of k's bucket at now, and reports whether there was one.
func (l *Limiter[K]) Allow(k K, now time.Time) bool {
	if l == nil || l.rate == 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for key, b := range l.by {
			if now.Sub(b.at) > time.Minute {
				delete(l.by, key)
			}
		}
		l.swept = now
	}
	b, ok := l.by[k]
	if !ok {
		b = &bucket{tokens: l.burst, at: now}
		l.by[k] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
