package site

import (
	"fmt"
	"net"
)

// MAC is an Ethernet hardware address. The zero MAC means "none".
// It is comparable, so it can key a map, and prints as lower-case "52:54:00:00:40:10".
type MAC [6]byte

// ParseMAC parses a 48-bit MAC in any form net.ParseMAC accepts
// ("52:54:00:00:40:10", "52-54-00-00-40-10", "5254.0000.4010").
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return MAC{}, fmt.Errorf("%q is not a MAC address", s)
	}
	return MAC(hw), nil
}

// IsZero reports whether m is unset.
func (m MAC) IsZero() bool { return m == MAC{} }

// IsMulticast reports whether m is a group address, which no NIC uses as its own.
func (m MAC) IsMulticast() bool { return m[0]&1 == 1 }

// HardwareAddr converts m for libraries that take a net.HardwareAddr.
func (m MAC) HardwareAddr() net.HardwareAddr { return net.HardwareAddr(m[:]) }

func (m MAC) String() string { return m.HardwareAddr().String() }

// MarshalText renders m as "52:54:00:00:40:10".
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses any form ParseMAC accepts.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
