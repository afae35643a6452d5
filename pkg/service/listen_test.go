package service

import (
	"net"
	"net/netip"
	"testing"
)

// TestListenShared: the sockets share one port (port 0: the first one's), and a port
// that a socket not sharing it holds binds none.
func TestListenShared(t *testing.T) {
	conns, err := ListenShared("udp4", netip.MustParseAddrPort("127.0.0.1:0"), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	port := conns[0].LocalAddr().(*net.UDPAddr).Port
	for _, c := range conns {
		defer c.Close()
		if got := c.LocalAddr().(*net.UDPAddr).Port; got != port {
			t.Errorf("a socket on port %d, want %d", got, port)
		}
	}
	alone, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()
	if conns, err := ListenShared("udp4", alone.LocalAddr().(*net.UDPAddr).AddrPort(), 2, nil); err == nil {
		for _, c := range conns {
			c.Close()
		}
		t.Error("bound beside a socket that does not share its port")
	}
}
