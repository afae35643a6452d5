package service

import (
	"context"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// ListenShared binds n UDP sockets of network ("udp", "udp4" or "udp6") to addr,
// sharing it (SO_REUSEPORT): the kernel spreads the clients over them by address, and
// each can be read by a goroutine of its own. set, when not nil, sets a socket's
// options before it binds. With port 0, the first socket's port is the one the others
// share. On an error no socket stays bound. Bind addr alone first when no other
// process may share it: SO_REUSEPORT would let one that also sets it.
func ListenShared(network string, addr netip.AddrPort, n int, set func(fd int)) ([]*net.UDPConn, error) {
	shared := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			if err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err == nil && set != nil {
				set(int(fd))
			}
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	var conns []*net.UDPConn
	for range n {
		pc, err := shared.ListenPacket(context.Background(), network, addr.String())
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		conn := pc.(*net.UDPConn)
		conns = append(conns, conn)
		addr = netip.AddrPortFrom(addr.Addr(), uint16(conn.LocalAddr().(*net.UDPAddr).Port))
	}
	return conns, nil
}
