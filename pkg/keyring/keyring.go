// Package keyring keeps a ring of infrad's own keys (DNSSEC's signing keys, NTS's
// cookie keys) in the site's store and rolls it on a schedule. Every box of a
// cluster runs a Keeper for each ring; a change is a compare-and-swap through the
// write path, so when two boxes find the ring due at once, one change wins and both
// use it. Keys are made before they are used, so a box that has not yet read a new
// key never meets it.
package keyring

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Store keeps rings by name: the site's store, through IPAM.
type Store interface {
	Keyring(name string) ([]byte, error)
	SwapKeyring(ctx context.Context, name string, old, next []byte) (bool, error)
}

// Plan returns the ring as it should be at now, and whether that differs from ring.
type Plan[R any] func(ring R, now time.Time) (R, bool, error)

// Keeper holds one ring: the last one read, rolled by its plan.
type Keeper[R any] struct {
	Name  string
	Store Store
	Plan  Plan[R]
	Now   func() time.Time // nil: time.Now
	// Trusted says whether the clock may be trusted to roll the ring; nil: always.
	// While it may not, the ring is read and never changed.
	Trusted func() bool
	// Use is called with each ring read that differs from the last.
	Use func(R)
	Log *slog.Logger // nil: slog.Default()

	mu      sync.Mutex
	raw     []byte
	waiting bool // the last refresh could not plan (an untrusted clock) or failed
}

func (k *Keeper[R]) now() time.Time {
	if k.Now == nil {
		return time.Now()
	}
	return k.Now()
}

// Refresh reads the ring, changes it when its plan says so, and gives it to Use.
func (k *Keeper[R]) Refresh(ctx context.Context) error {
	return k.refresh(ctx, k.Plan, true)
}

// Read reads the ring and gives it to Use when it changed, planning nothing: what
// another box changed, taken as soon as this one hears of a change.
func (k *Keeper[R]) Read(ctx context.Context) error {
	return k.refresh(ctx, nil, false)
}

// Change reads the ring, changes it as change says (one change asked for, as a
// command would: "roll the key now"), and gives it to Use. change's error is
// returned as it is. The clock must be trusted.
func (k *Keeper[R]) Change(ctx context.Context, change Plan[R]) error {
	if k.Trusted != nil && !k.Trusted() {
		return fmt.Errorf("the %s key ring changes only by a trusted clock, and this one is not", k.Name)
	}
	return k.refresh(ctx, change, false)
}

// refresh reads the ring, plans it (nil: not), stores what changed, and uses what it
// read. planned: plan is the ring's own plan (its errors are wrapped, an untrusted
// clock skips it).
func (k *Keeper[R]) refresh(ctx context.Context, plan Plan[R], planned bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if planned {
		k.waiting = true // until it plans
	}
	for range 3 { // a lost swap reads the winner's ring and plans again
		raw, err := k.Store.Keyring(k.Name)
		if err != nil {
			return fmt.Errorf("read the %s key ring: %w", k.Name, err)
		}
		var ring R
		if raw != nil {
			if err := json.Unmarshal(raw, &ring); err != nil {
				return fmt.Errorf("the %s key ring in the store: %w", k.Name, err)
			}
		}
		if trusted := k.Trusted == nil || k.Trusted(); trusted && plan != nil {
			next, changed, err := plan(ring, k.now())
			if err != nil && !planned {
				return err
			}
			if err != nil {
				return fmt.Errorf("roll the %s key ring: %w", k.Name, err)
			}
			if changed {
				b, err := json.Marshal(next)
				if err != nil {
					return err
				}
				swapped, err := k.Store.SwapKeyring(ctx, k.Name, raw, b)
				if err != nil {
					return fmt.Errorf("store the %s key ring: %w", k.Name, err)
				}
				if !swapped {
					continue
				}
				raw, ring = b, next
			}
			if planned {
				k.waiting = false
			}
		}
		if string(raw) != string(k.raw) {
			k.raw = raw
			k.Use(ring)
		}
		return nil
	}
	return fmt.Errorf("the %s key ring changed under three plans in a row", k.Name)
}

// retry is how soon Run refreshes again after a refresh that could not plan: the
// clock was not yet trusted (NTP assesses its source as it starts, beside the
// services that keep rings) or the store refused the write.
const retry = time.Second

// Run refreshes the ring every interval until ctx ends, logging what fails (the next
// round tries again: a box without a quorum keeps its ring until it has one), and
// every second while the last refresh could not plan.
func (k *Keeper[R]) Run(ctx context.Context, every time.Duration) {
	log := k.Log
	if log == nil {
		log = slog.Default()
	}
	for {
		k.mu.Lock()
		wait := every
		if k.waiting {
			wait = retry
		}
		k.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
			if err := k.Refresh(ctx); err != nil && ctx.Err() == nil {
				log.Warn("key ring", "ring", k.Name, "err", err)
			}
		}
	}
}
