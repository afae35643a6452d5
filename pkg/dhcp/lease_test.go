package dhcp

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// clock is a time that only moves when the test says.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

const oneAddressSite = `domain: k8s.example.com
dhcp: {lease_time: 1m}
subnets:
  - name: lab
    cidr: 10.77.0.0/24
    ranges:
      - {kind: dhcp, start: 10.77.0.100, end: 10.77.0.100}
`

func TestEndedLeasesAreReclaimed(t *testing.T) {
	m, site := sitetest.IPAM(t, []byte(oneAddressSite))
	c := &clock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	s := New(Options{Site: site, IPAM: m, Registry: prometheus.NewRegistry(), Now: c.Now})
	l := &link{name: "br0", addr: mustAddr("10.77.0.1")}

	ip := lease(t, s, l, mac(1), hostname("laptop"))
	if offer, _ := s.handle(context.Background(), l, message(t, mac(2), dhcpv4.MessageTypeDiscover)); offer != nil {
		t.Fatal("the one address of the pool was offered while leased")
	}
	c.advance(2 * time.Minute)
	if n, err := m.Apply(t.Context(), ipam.ExpireLeases{Stamp: ipam.Stamp{At: c.Now()}}); err != nil || n != 1 {
		t.Fatalf("expire: got %v, %v; want 1 lease reclaimed", n, err)
	}
	if _, ok := m.Model().Lease(mustAddr(ip)); ok {
		t.Errorf("the ended lease is still there")
	}
	if _, ok := m.Model().LeaseNamed("laptop", false); ok {
		t.Errorf("the ended lease's name is still there")
	}
	s.offers.Expire()
	if offer, _ := s.handle(context.Background(), l, message(t, mac(2), dhcpv4.MessageTypeDiscover)); offer == nil || offer.YourIPAddr.String() != ip {
		t.Errorf("after expiry: got %v, want %s offered to another client", offer, ip)
	}
}

const wideSite = `domain: k8s.example.com
subnets:
  - name: lab
    cidr: 10.0.0.0/8
    ranges:
      - {kind: dhcp, start: 10.1.0.0, end: 10.254.255.255}
`

// A flood of DISCOVERs from new clients holds at most maxOffers offers: the oldest go
// first, each counted, and the newest are still held. Each client holds one offer.
// Lapsed offers go with their clients' memory of them.
func TestOffersAreBounded(t *testing.T) {
	m, _ := sitetest.IPAM(t, []byte(wideSite))
	c := &clock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	var dropped int
	o := newOffers(c.Now, func() { dropped++ })
	sn, _ := m.Model().Subnet("lab")
	macOf := func(i int) site.MAC { return site.MAC{0x02, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)} }
	var first, last netip.Addr
	for i := range maxOffers + 100 {
		ip, ok := o.Offer(m.Model(), sn, macOf(i), netip.Addr{}, 0, 1)
		if !ok {
			t.Fatalf("offer %d: the pool is not empty", i)
		}
		if i == 0 {
			first = ip
		}
		last = ip
	}
	if len(o.byIP) != maxOffers || len(o.recent) != maxOffers || dropped != 100 {
		t.Errorf("%d offers, %d clients remembered, %d dropped; want %d, %d and 100", len(o.byIP), len(o.recent), dropped, maxOffers, maxOffers)
	}
	if o.OfferedToOther(first, macOf(1)) || !o.OfferedToOther(last, macOf(1)) {
		t.Error("want the oldest offer dropped and the newest held")
	}

	// A client offered another address (its first was taken meanwhile) holds only that.
	again, _ := o.Offer(m.Model(), sn, macOf(maxOffers+99), netip.Addr{}, 0, 1)
	if again != last {
		t.Fatalf("a client asking again was offered %s, want its %s", again, last)
	}
	o.Taken(last)
	if o.OfferedToOther(last, macOf(1)) {
		t.Error("a taken offer is still held")
	}

	c.advance(offerHold)
	o.Expire()
	if len(o.byIP) != 0 || len(o.recent) != 1 || len(o.made) != 0 {
		t.Errorf("after offerHold: %d offers, %d clients remembered, %d entries in order, want none, the one that took its offer, none", len(o.byIP), len(o.recent), len(o.made))
	}
}
