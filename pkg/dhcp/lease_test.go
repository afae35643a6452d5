package dhcp

import (
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/store"
)

// clock is a time that only moves when the test says.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func TestEndedLeasesAreReclaimed(t *testing.T) {
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "infrad.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := &clock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	table, err := newLeaseTable(st, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	sn := ipam.Subnet{Name: "lab", CIDR: netip.MustParsePrefix("10.77.0.0/24"), Ranges: []ipam.Range{
		{Kind: ipam.RangeDHCP, Start: netip.MustParseAddr("10.77.0.100"), End: netip.MustParseAddr("10.77.0.100")}}}
	a, b := ipam.MAC{0x52, 0, 0, 0, 0, 1}, ipam.MAC{0x52, 0, 0, 0, 0, 2}

	ip, ok := table.Offer(sn, a, netip.Addr{})
	if !ok {
		t.Fatal("no offer")
	}
	if _, err := table.Commit(a, ip, "laptop", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok := table.Offer(sn, b, netip.Addr{}); ok {
		t.Fatal("the one address of the pool was offered while leased")
	}
	c.advance(2 * time.Minute)
	if n, err := table.Expire(); err != nil || n != 1 {
		t.Fatalf("Expire: got %d, %v; want 1 lease reclaimed", n, err)
	}
	err = st.View(func(tx *store.Tx) error {
		if _, ok, _ := store.Get[ipam.Lease](tx, store.BucketLeases, ip.String()); ok {
			t.Errorf("the ended lease is still stored")
		}
		if _, ok, _ := store.GetRaw(tx, store.BucketLeaseNames, "laptop"); ok {
			t.Errorf("the ended lease's name is still in the index")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := table.Offer(sn, b, netip.Addr{}); !ok || got != ip {
		t.Errorf("after expiry: got %s %v, want %s offered to another client", got, ok, ip)
	}
}
