package dhcp

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/internal/sitetest"
)

const benchSite = `domain: lab.test
dhcp: {lease_time: 1h, rate_limit: 0}
subnets:
  - name: lab
    cidr: 10.0.0.0/8
    ranges:
      - {kind: dhcp, start: 10.1.0.0, end: 10.200.255.255}
`

// BenchmarkExchange times DISCOVER and REQUEST of fresh clients, many at once, through
// handle: offers, the write path and its group commit (with fsync), no sockets.
func BenchmarkExchange(b *testing.B) {
	m, site := sitetest.IPAM(b, []byte(benchSite))
	s := New(Options{Site: site, IPAM: m, Registry: prometheus.NewRegistry()})
	l := &link{name: "br0", addr: mustAddr("10.0.0.1")}
	var next atomic.Uint32
	b.SetParallelism(64)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			hw := net.HardwareAddr{0x52, 0x54, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
			d, _ := dhcpv4.New(dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))
			offer, _ := s.handle(context.Background(), l, d)
			if offer == nil {
				b.Fatal("no offer")
			}
			r, _ := dhcpv4.New(dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
				dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(l.addr.AsSlice()))))
			if ack, _ := s.handle(context.Background(), l, r); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
				b.Fatalf("got %v, want an ACK", ack)
			}
		}
	})
}
