package keyring

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

// memStore is a Store in memory: a compare-and-swap under a lock, as the write path
// applies one.
type memStore struct {
	mu    sync.Mutex
	rings map[string][]byte
	swaps int
}

func (m *memStore) Keyring(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.rings[name]), nil
}

func (m *memStore) SwapKeyring(_ context.Context, name string, old, next []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !bytes.Equal(m.rings[name], old) {
		return false, nil
	}
	m.rings[name] = bytes.Clone(next)
	m.swaps++
	return true, nil
}

type ring struct{ Keys []int }

// plan adds a key when the ring has none made within the last hour (a key is the
// hour it was made).
func plan(r ring, now time.Time) (ring, bool, error) {
	h := int(now.Unix() / 3600)
	if len(r.Keys) > 0 && r.Keys[len(r.Keys)-1] == h {
		return r, false, nil
	}
	return ring{Keys: append(r.Keys, h)}, true, nil
}

// TestKeepersRace: boxes that find the ring due at once make one change between them,
// and all use it.
func TestKeepersRace(t *testing.T) {
	store := &memStore{rings: map[string][]byte{}}
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	used := map[int]ring{}
	var keepers []*Keeper[ring]
	for i := range 5 {
		keepers = append(keepers, &Keeper[ring]{Name: "test", Store: store, Plan: plan, Now: func() time.Time { return now },
			Use: func(r ring) { mu.Lock(); used[i] = r; mu.Unlock() }})
	}
	var wg sync.WaitGroup
	for _, k := range keepers {
		wg.Go(func() {
			if err := k.Refresh(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if store.swaps != 1 {
		t.Errorf("%d changes stored, want 1", store.swaps)
	}
	for i := range keepers {
		if got := used[i]; len(got.Keys) != 1 || got.Keys[0] != used[0].Keys[0] {
			t.Errorf("keeper %d uses %v, keeper 0 %v", i, got, used[0])
		}
	}
}

// TestKeeperWaitsForTrustedTime: while the clock is not trusted, the ring is read and
// used, never changed, and the keeper says it is waiting; once trusted, it plans.
func TestKeeperWaitsForTrustedTime(t *testing.T) {
	store := &memStore{rings: map[string][]byte{}}
	trusted := false
	uses := 0
	k := &Keeper[ring]{Name: "test", Store: store, Plan: plan, Trusted: func() bool { return trusted },
		Use: func(ring) { uses++ }}
	if err := k.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if store.swaps != 0 || !k.waiting {
		t.Errorf("untrusted: %d changes stored, waiting %v; want none, and waiting", store.swaps, k.waiting)
	}
	trusted = true
	if err := k.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if store.swaps != 1 || k.waiting || uses != 1 {
		t.Errorf("trusted: %d changes, waiting %v, %d uses; want 1, not waiting, 1", store.swaps, k.waiting, uses)
	}
	if err := k.Refresh(t.Context()); err != nil || uses != 1 {
		t.Errorf("a refresh with nothing due: %v, %d uses, want Use not called again", err, uses)
	}
}
