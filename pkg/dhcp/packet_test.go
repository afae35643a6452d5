package dhcp

import (
	"bytes"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestPacketIsTheLibrarys holds typeOf, appendPacket and setLeaseTimes to what the
// library's MessageType, ToBytes and lease time options give, on messages of every
// shape: few and many options, an option over 255 bytes, the relay agent's, long
// header strings, odd hardware and IP fields, and replies as the server builds them.
func TestPacketIsTheLibrarys(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var msgs []*dhcpv4.DHCPv4
	for i := range 500 {
		m, _ := dhcpv4.New()
		m.OpCode = dhcpv4.OpcodeType(rng.IntN(3))
		m.HopCount = uint8(rng.IntN(256))
		m.NumSeconds, m.Flags = uint16(rng.Uint32()), uint16(rng.Uint32())
		m.ClientHWAddr = make(net.HardwareAddr, rng.IntN(20))
		for _, ip := range []*net.IP{&m.ClientIPAddr, &m.YourIPAddr, &m.ServerIPAddr, &m.GatewayIPAddr} {
			switch rng.IntN(4) {
			case 0:
				*ip = nil
			case 1:
				*ip = net.IPv4(10, byte(i), 0, 1) // the 16-byte form
			default:
				*ip = net.IP{10, byte(i), 0, 2}
			}
		}
		m.ServerHostName = strings.Repeat("s", rng.IntN(80))
		m.BootFileName = strings.Repeat("f", rng.IntN(140))
		m.Options = dhcpv4.Options{}
		for range rng.IntN(40) {
			v := make([]byte, rng.IntN(600)*rng.IntN(2))
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			m.Options[uint8(rng.IntN(256))] = v
		}
		if rng.IntN(3) == 0 {
			m.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageType(rng.IntN(10))))
		}
		msgs = append(msgs, m)
	}
	s, l := newService(t)
	msgs = append(msgs, exchange(t, s, l, mac(1), hostname("node1")))
	for i, m := range msgs {
		prefix := []byte("already in the buffer")
		if got, want := appendPacket(prefix, m)[len(prefix):], m.ToBytes(); !bytes.Equal(got, want) {
			t.Fatalf("message %d: appendPacket gave\n%x\nwant ToBytes'\n%x", i, got, want)
		}
		if got, want := typeOf(m), m.MessageType(); got != want {
			t.Fatalf("message %d: typeOf gave %v, want %v", i, got, want)
		}
	}
	for _, lt := range []time.Duration{0, time.Second, 90 * time.Second, 12 * time.Hour, 1<<32*time.Second - 1} {
		got, want := dhcpv4.Options{}, dhcpv4.Options{}
		setLeaseTimes(got, lt)
		want.Update(dhcpv4.OptIPAddressLeaseTime(lt))
		want.Update(dhcpv4.OptRenewTimeValue(lt / 2))
		want.Update(dhcpv4.OptRebindingTimeValue(lt * 7 / 8))
		if !bytes.Equal(got.ToBytes(), want.ToBytes()) {
			t.Errorf("lease time %v: got %x, want %x", lt, got.ToBytes(), want.ToBytes())
		}
	}
}
