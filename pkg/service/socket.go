package service

import (
	"net"

	"golang.org/x/sys/unix"
)

// DHCPReadBuffer is the receive buffer a DHCP socket (v4 or v6) asks for: a boot
// storm arrives in bursts, and the kernel's default (about 208 KiB) drops them while a
// commit is on its way to disk.
const DHCPReadBuffer = 4 << 20

// GrowReadBuffer sets the socket's receive buffer to size, past net.core.rmem_max when
// the process may (CAP_NET_ADMIN), else as far as rmem_max allows.
func GrowReadBuffer(conn *net.UDPConn, size int) {
	raw, err := conn.SyscallConn()
	if err == nil {
		var forced error
		raw.Control(func(fd uintptr) {
			forced = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
		})
		if forced == nil {
			return
		}
	}
	conn.SetReadBuffer(size)
}
