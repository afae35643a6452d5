package dhcp

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// BenchmarkExchange runs DISCOVER and REQUEST for a new client each time, from many
// goroutines at once as server4 does, with the leases committed to a real store.
func BenchmarkExchange(b *testing.B) {
	s, l := newServiceOn(b, `domain: bench.test
subnets:
  - {name: big, cidr: 10.0.0.0/8, ranges: [{kind: dhcp, start: 10.1.0.0, end: 10.254.255.255}]}
`, "10.0.0.1")
	var n atomic.Uint32
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for range b.N {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			i := n.Add(1)
			hw := net.HardwareAddr{0x52, 0x54, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
			d, _ := dhcpv4.New(dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))
			offer, _ := s.handle(l, d)
			if offer == nil {
				return
			}
			r, _ := dhcpv4.New(dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
				dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.1"))))
			s.handle(l, r)
		})
	}
	wg.Wait()
}
