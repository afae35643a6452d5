package service

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Tracker is what a started service knows of itself (Tailscale's health.Tracker, small):
// the faults it has now, each under a key ("socket eth1", "reload"), since when, and
// why. A fault is either one a restart may cure (a socket lost: the Manager restarts
// the service) or a degradation a restart cannot (no time source): both make the
// service not ready, with the reason, until cleared. Its zero value is ready.
type Tracker struct {
	mu     sync.Mutex
	faults map[string]fault
	since  time.Time
}

type fault struct {
	reason  string
	restart bool
}

// Fail records a fault that a restart of the service may cure.
func (t *Tracker) Fail(key, reason string) { t.set(key, fault{reason, true}) }

// Degrade records a fault that a restart cannot cure.
func (t *Tracker) Degrade(key, reason string) { t.set(key, fault{reason, false}) }

func (t *Tracker) set(key string, f fault) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.faults == nil {
		t.faults = map[string]fault{}
	}
	if len(t.faults) == 0 {
		t.since = time.Now()
	}
	t.faults[key] = f
}

// Clear forgets the fault under key.
func (t *Tracker) Clear(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.faults[key]; ok {
		delete(t.faults, key)
		t.since = time.Now()
	}
}

// Reset forgets every fault: the service has started afresh.
func (t *Tracker) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.faults)
}

// Health is StateFailed while a fault a restart may cure stands, StateDegraded while
// only others do, and empty (the Manager's view) when there is none. LastError names
// every fault, in key order.
func (t *Tracker) Health() Health {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.faults) == 0 {
		return Health{}
	}
	h := Health{State: StateDegraded, Since: t.since}
	var reasons []string
	for _, k := range slices.Sorted(maps.Keys(t.faults)) {
		f := t.faults[k]
		reasons = append(reasons, f.reason)
		if f.restart {
			h.State = StateFailed
		}
	}
	h.LastError = strings.Join(reasons, "; ")
	return h
}
