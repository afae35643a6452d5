package dhcp

import (
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/pkg/ipam"
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
	if offer, _ := s.handle(l, message(t, mac(2), dhcpv4.MessageTypeDiscover)); offer != nil {
		t.Fatal("the one address of the pool was offered while leased")
	}
	c.advance(2 * time.Minute)
	if n, err := m.Apply(t.Context(), ipam.ExpireLeases{Stamp: ipam.Stamp{At: c.Now()}}); err != nil || n != 1 {
		t.Fatalf("expire: got %v, %v; want 1 lease reclaimed", n, err)
	}
	if _, ok := m.Model().Lease(mustAddr(ip)); ok {
		t.Errorf("the ended lease is still there")
	}
	if _, ok := m.Model().LeaseNamed("laptop"); ok {
		t.Errorf("the ended lease's name is still there")
	}
	s.offers.Expire()
	if offer, _ := s.handle(l, message(t, mac(2), dhcpv4.MessageTypeDiscover)); offer == nil || offer.YourIPAddr.String() != ip {
		t.Errorf("after expiry: got %v, want %s offered to another client", offer, ip)
	}
}
