package dhcp

import (
	"encoding/binary"
	"net"
	"slices"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// The two library calls each DHCP exchange makes most often, done without the
// buffers they allocate: a message's type (read several times a packet) and a reply's
// wire form. Each gives exactly what the library gives (TestPacketIsTheLibrarys).

// typeOf is m's message type, as typeOf(m) reads it.
func typeOf(m *dhcpv4.DHCPv4) dhcpv4.MessageType {
	if v := m.Options.Get(dhcpv4.OptionDHCPMessageType); len(v) == 1 {
		return dhcpv4.MessageType(v[0])
	}
	return dhcpv4.MessageTypeNone
}

// bootpMinLen is the length below which some relays drop a message (RFC 951's 300 bytes).
const bootpMinLen = 300

var magicCookie = [4]byte{99, 130, 83, 99}

// appendPacket appends d's wire form to b, as d.ToBytes() writes it: the header, the
// options in order of their codes (the relay agent's 82 last, RFC 3046; RFC 3396's
// repeats for values over 255 bytes), End, and padding up to 300 bytes.
func appendPacket(b []byte, d *dhcpv4.DHCPv4) []byte {
	start := len(b)
	b = append(b, byte(d.OpCode), byte(d.HWType), uint8(len(d.ClientHWAddr)), d.HopCount)
	b = append(b, d.TransactionID[:]...)
	b = binary.BigEndian.AppendUint16(b, d.NumSeconds)
	b = binary.BigEndian.AppendUint16(b, d.Flags)
	for _, ip := range []net.IP{d.ClientIPAddr, d.YourIPAddr, d.ServerIPAddr, d.GatewayIPAddr} {
		b = appendIP(b, ip)
	}
	b = appendField(b, d.ClientHWAddr, 16, 16)
	b = appendField(b, d.ServerHostName, 64, 63)
	b = appendField(b, d.BootFileName, 128, 127)
	b = append(b, magicCookie[:]...)

	var stack [32]uint8
	codes := stack[:0]
	for code := range d.Options {
		if code != dhcpv4.OptionRelayAgentInformation.Code() && code != dhcpv4.OptionEnd.Code() && code != dhcpv4.OptionPad.Code() {
			codes = append(codes, code)
		}
	}
	slices.Sort(codes)
	if _, ok := d.Options[dhcpv4.OptionRelayAgentInformation.Code()]; ok {
		codes = append(codes, dhcpv4.OptionRelayAgentInformation.Code())
	}
	for _, code := range codes {
		v := d.Options[code]
		if len(v) == 0 {
			b = append(b, code, 0)
		}
		for len(v) > 0 {
			n := min(len(v), 255)
			b = append(append(b, code, uint8(n)), v[:n]...)
			v = v[n:]
		}
	}
	b = append(b, dhcpv4.OptionEnd.Code())
	for len(b)-start < bootpMinLen {
		b = append(b, dhcpv4.OptionPad.Code())
	}
	return b
}

// appendIP appends ip's four bytes, or four zeros when it is not IPv4.
func appendIP(b []byte, ip net.IP) []byte {
	if v4 := ip.To4(); v4 != nil {
		return append(b, v4...)
	}
	return append(b, 0, 0, 0, 0)
}

// appendField appends a fixed field of size bytes: v's first at most max bytes, then zeros.
func appendField[T ~string | ~[]byte](b []byte, v T, size, max int) []byte {
	n := min(len(v), max)
	b = append(b, v[:n]...)
	return append(b, make([]byte, size-n)...)
}
