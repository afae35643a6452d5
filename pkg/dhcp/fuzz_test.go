package dhcp

import (
	"context"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzHandle feeds the DHCP server any packet: a malformed one is dropped, none panics.
func FuzzHandle(f *testing.F) {
	hw := net.HardwareAddr{0x52, 0x54, 0, 0x99, 0, 1}
	for _, typ := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeRelease,
		dhcpv4.MessageTypeDecline, dhcpv4.MessageTypeInform} {
		m, _ := dhcpv4.New(dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(typ),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.77.0.100"))),
			dhcpv4.WithOption(dhcpv4.OptHostName("fuzz")))
		f.Add(m.ToBytes())
	}
	f.Add(make([]byte, 240))
	s, l := newService(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := dhcpv4.FromBytes(data)
		if err != nil {
			return // what serve drops
		}
		s.handle(context.Background(), l, m)
	})
}
