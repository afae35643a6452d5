package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/infrad/infrad/pkg/service"
)

// The front door: infrad owns its DNS sockets. Each listen address has a UDP socket
// per CPU the process may use (SO_REUSEPORT: the kernel spreads the clients over
// them), each read in batches (recvmmsg) by one goroutine that answers what the
// site's zones hold at once (from the answer cache when it can) and writes the replies
// in a batch (sendmmsg). A query that waits on something else, a name to forward or a
// signed UPDATE's commit, goes to a fixed set of workers through a bounded queue:
// when it is full the query is dropped and counted (the client asks again), so a
// flood costs no more memory than the queue. TCP (RFC 7766) serves a bounded number
// of connections, a bounded number from each address, each closed when idle; the
// queries of one connection that wait are answered beside the others.

const (
	udpBatch             = 32               // datagrams a socket takes from the kernel at once
	udpReadBuffer        = 4 << 20          // bytes of datagrams a socket's kernel buffer holds
	maxUDPQuery          = 8 << 10          // bytes of a UDP query: more is no query of ours
	waitWorkers          = 64               // the workers for queries that wait
	waitQueue            = 1024             // queries waiting for them
	maxTCPConns          = 256              // TCP connections at once; more are closed at once
	maxTCPConnsPerClient = 32               // of them from one address: no client takes them all
	tcpIdle              = 10 * time.Second // a connection with no query for this long is closed
	tcpWaiting           = 16               // queries that wait, answered at once on one connection
	tcpWriteLimit        = 10 * time.Second // a reply the client does not take in this long ends it
)

// udpSockets is how many UDP sockets serve each listen address: one a CPU this
// process may use (its affinity and its cgroup's quota), up to 8.
func udpSockets() int { return min(service.CPUs(), 8) }

// door is the listeners of one Service and the goroutines that serve them.
type door struct {
	h   *handler
	ctx context.Context // ended by close: the queries in hand give up
	end context.CancelFunc

	waiting chan waiting

	mu        sync.Mutex
	listeners map[netip.AddrPort]*listener
	conns     map[net.Conn]struct{} // open TCP connections
	perClient map[netip.Addr]int    // open TCP connections by client address
	loops     sync.WaitGroup
}

// listener is the sockets of one listen address.
type listener struct {
	udp     []*net.UDPConn
	tcp     net.Listener
	closing atomic.Bool // closed on purpose: its loops end without a word
}

func (l *listener) close() {
	l.closing.Store(true)
	for _, c := range l.udp {
		c.Close()
	}
	if l.tcp != nil {
		l.tcp.Close()
	}
}

// waiting is a UDP query handed to the workers.
type waiting struct {
	r *dns.Msg
	w *replyWriter
}

// open binds every listen address, UDP and TCP, and starts serving; on an error
// nothing stays bound.
func open(h *handler, listen []netip.AddrPort) (*door, error) {
	ctx, end := context.WithCancel(context.Background())
	d := &door{h: h, ctx: ctx, end: end, waiting: make(chan waiting, waitQueue),
		listeners: map[netip.AddrPort]*listener{}, conns: map[net.Conn]struct{}{}, perClient: map[netip.Addr]int{}}
	if err := d.listen(listen); err != nil {
		d.close()
		return nil, err
	}
	for range waitWorkers {
		d.loops.Go(d.work)
	}
	return d, nil
}

// listen makes the door's listen addresses listen: it binds those it lacks and
// closes the others. On an error it binds none, and closes none.
func (d *door) listen(listen []netip.AddrPort) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	added := map[netip.AddrPort]*listener{}
	for _, addr := range listen {
		if d.listeners[addr] != nil || added[addr] != nil {
			continue
		}
		l := &listener{}
		added[addr] = l
		var err error
		if l.udp, err = listenUDP(addr, udpSockets()); err == nil {
			l.tcp, err = net.Listen("tcp", addr.String())
		}
		if err != nil {
			for _, l := range added {
				l.close()
			}
			return fmt.Errorf("dns listen %s: %w", addr, err)
		}
	}
	for addr, l := range d.listeners {
		if !slices.Contains(listen, addr) {
			l.close()
			delete(d.listeners, addr)
		}
	}
	for addr, l := range added {
		d.listeners[addr] = l
		for _, c := range l.udp {
			d.loops.Go(func() { d.readUDP(l, c) })
		}
		d.loops.Go(func() { d.accept(l) })
	}
	return nil
}

// listenUDP binds n UDP sockets to addr, sharing it (SO_REUSEPORT). The caller has
// bound it alone first (checkFree), so no other process shares it. Each socket is of
// one family, so that the address a query came to reads and writes as that family's
// packet information: [::] is bound as [::] for IPv6 and 0.0.0.0 for IPv4.
func listenUDP(addr netip.AddrPort, n int) ([]*net.UDPConn, error) {
	if addr.Addr() == netip.IPv6Unspecified() {
		v6, err := listenFamily("udp6", addr, n)
		if err != nil {
			return nil, err
		}
		v4, err := listenFamily("udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), addr.Port()), n)
		if err != nil {
			for _, c := range v6 {
				c.Close()
			}
			return nil, err
		}
		return append(v6, v4...), nil
	}
	network := "udp6"
	if addr.Addr().Unmap().Is4() {
		network, addr = "udp4", netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	}
	return listenFamily(network, addr, n)
}

// listenFamily binds n sockets of network (udp4 or udp6) to addr.
func listenFamily(network string, addr netip.AddrPort, n int) ([]*net.UDPConn, error) {
	conns, err := service.ListenShared(network, addr, n, func(fd int) {
		// Room for a burst while the reader signs a denial or the workers' queue is
		// full: past the system's limit when infrad may (root), as NSD does; else what
		// the system allows.
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, udpReadBuffer) != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, udpReadBuffer)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("udp: %w", err)
	}
	return conns, nil
}

// close closes every listener and connection and returns once every goroutine of
// the door has ended.
func (d *door) close() {
	d.end()
	d.mu.Lock()
	for _, l := range d.listeners {
		l.close()
	}
	for c := range d.conns {
		c.Close()
	}
	d.conns = nil
	d.mu.Unlock()
	d.loops.Wait()
}

// packetConn wraps c for batched reads and writes, with the destination address of
// each datagram when c is bound to a wildcard address (so that the reply leaves from
// the address the query came to).
type packetConn struct {
	v4       *ipv4.PacketConn
	v6       *ipv6.PacketConn
	wildcard bool
}

func newPacketConn(c *net.UDPConn) *packetConn {
	local := c.LocalAddr().(*net.UDPAddr)
	p := &packetConn{wildcard: local.IP.IsUnspecified()}
	if local.IP.To4() != nil {
		p.v4 = ipv4.NewPacketConn(c)
		if p.wildcard {
			p.v4.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
		}
	} else {
		p.v6 = ipv6.NewPacketConn(c)
		if p.wildcard {
			p.v6.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
		}
	}
	return p
}

func (p *packetConn) readBatch(ms []ipv4.Message) (int, error) {
	if p.v4 != nil {
		return p.v4.ReadBatch(ms, 0)
	}
	return p.v6.ReadBatch(ms, 0)
}

func (p *packetConn) writeBatch(ms []ipv4.Message) (int, error) {
	if p.v4 != nil {
		return p.v4.WriteBatch(ms, 0)
	}
	return p.v6.WriteBatch(ms, 0)
}

// replyOOB is the control message that sends a reply from the address the query in
// oob came to; nil when the socket is bound to one address.
func (p *packetConn) replyOOB(oob []byte) []byte {
	if !p.wildcard {
		return nil
	}
	if p.v4 != nil {
		var cm ipv4.ControlMessage
		if cm.Parse(oob) != nil {
			return nil
		}
		return (&ipv4.ControlMessage{Src: cm.Dst, IfIndex: cm.IfIndex}).Marshal()
	}
	var cm ipv6.ControlMessage
	if cm.Parse(oob) != nil {
		return nil
	}
	return (&ipv6.ControlMessage{Src: cm.Dst, IfIndex: cm.IfIndex}).Marshal()
}

// readUDP serves c until it is closed: a batch of queries read, each answered (or
// handed to the workers), the answers written in a batch.
func (d *door) readUDP(l *listener, c *net.UDPConn) {
	p := newPacketConn(c)
	in := make([]ipv4.Message, udpBatch)
	outBufs := make([][]byte, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, maxUDPQuery)}
		if p.wildcard {
			in[i].OOB = make([]byte, 128)
		}
		outBufs[i] = make([]byte, 0, maxUDPSize+maxTSIGLen)
	}
	ws := make([]replyWriter, udpBatch)
	out := make([]ipv4.Message, 0, udpBatch)
	outWire := make([][][]byte, udpBatch)
	key := make([]byte, 0, cacheKeyLen)
	local := c.LocalAddr()
	for {
		n, err := p.readBatch(in)
		if errors.Is(err, net.ErrClosed) {
			if !l.closing.Load() {
				d.h.svc.health.Fail("listen", fmt.Sprintf("the socket on %s was closed under the service", local))
			}
			return
		}
		if err != nil {
			continue
		}
		out = out[:0]
		for i := range in[:n] {
			m := &in[i]
			if m.Flags&unix.MSG_TRUNC != 0 {
				continue // larger than any query of ours
			}
			w := &ws[i]
			*w = replyWriter{local: local, remote: m.Addr, udp: c, batch: true, out: outBufs[i][:0]}
			if p.wildcard {
				w.oob = p.replyOOB(m.OOB[:m.NN])
			}
			if d.serveUDP(m.Buffers[0][:m.N], w, key) && len(w.out) > 0 {
				outWire[i] = append(outWire[i][:0], w.out)
				out = append(out, ipv4.Message{Buffers: outWire[i], OOB: w.oob, Addr: m.Addr})
			}
		}
		for sent := 0; sent < len(out); {
			k, err := p.writeBatch(out[sent:])
			if err != nil {
				sent++ // that datagram could not go (the client's address, say): the rest may
				continue
			}
			sent += k
		}
	}
}

// serveUDP answers the query in b at once, into w.out, from the answer cache or the
// model, and reports true; or hands it to the workers (written by them when
// answered) and reports false. key is room for the cache's key.
func (d *door) serveUDP(b []byte, w *replyWriter, key []byte) bool {
	var a *answers
	q := readPlain(b, key)
	if q.usable && d.h.svc.answersFromModel() {
		if a = d.h.svc.answerCache(d.h.svc.ipam.Model(), q.do); a != nil && d.h.fromCache(b, &q, a, w) {
			d.h.svc.metrics.cacheHits.Inc()
			return true
		}
		d.h.svc.metrics.cacheMisses.Inc()
	}
	r, ok := d.h.read(b, w)
	if !ok {
		return true
	}
	if d.h.waits(r, w) {
		handed := *w // the reader's is its next query's
		handed.batch, handed.out = false, nil
		select {
		case d.waiting <- waiting{r, &handed}:
		default:
			d.h.svc.metrics.shed.Inc() // the workers are behind: the client asks again
		}
		return false
	}
	d.h.serveDNS(d.ctx, w, r)
	if a != nil {
		keep(a, &q, w.out)
	}
	return true
}

// work answers the queries handed over until the door closes.
func (d *door) work() {
	for {
		select {
		case q := <-d.waiting:
			d.h.serveDNS(d.ctx, q.w, q.r)
		case <-d.ctx.Done():
			return
		}
	}
}

// accept serves l's TCP connections until it is closed.
func (d *door) accept(l *listener) {
	for {
		c, err := l.tcp.Accept()
		if errors.Is(err, net.ErrClosed) {
			if !l.closing.Load() {
				d.h.svc.health.Fail("listen", fmt.Sprintf("the socket on %s was closed under the service", l.tcp.Addr()))
			}
			return
		}
		if err != nil {
			time.Sleep(5 * time.Millisecond) // out of descriptors, say: the next may do
			continue
		}
		client := clientAddr(c.RemoteAddr())
		d.mu.Lock()
		if d.conns == nil || len(d.conns) >= maxTCPConns || d.perClient[client] >= maxTCPConnsPerClient {
			d.mu.Unlock()
			c.Close()
			d.h.svc.metrics.shed.Inc()
			continue
		}
		d.conns[c] = struct{}{}
		d.perClient[client]++
		d.mu.Unlock()
		d.loops.Go(func() {
			d.serveTCP(c)
			d.mu.Lock()
			delete(d.conns, c)
			if d.perClient[client]--; d.perClient[client] == 0 {
				delete(d.perClient, client)
			}
			d.mu.Unlock()
			c.Close()
		})
	}
}

// serveTCP answers the queries of one connection until the client closes it, it
// stays idle for tcpIdle, or a write stalls. A client may send the next query before
// the last is answered (RFC 7766 §6.2.1.1): the zones' names are answered in turn, and
// a query that waits (a name forwarded, an UPDATE) is answered beside them, up to
// tcpWaiting of them at once, so its answer may come after those of later queries.
// Each reply is one write, whole.
func (d *door) serveTCP(c net.Conn) {
	var size [2]byte
	buf := make([]byte, 512)
	waiting := make(chan struct{}, tcpWaiting)
	var answering sync.WaitGroup
	defer answering.Wait()
	for {
		c.SetReadDeadline(time.Now().Add(tcpIdle))
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(size[:]))
		if n > cap(buf) {
			buf = make([]byte, n)
		}
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return
		}
		w := &replyWriter{local: c.LocalAddr(), remote: c.RemoteAddr(), tcp: c}
		r, ok := d.h.read(buf[:n], w)
		switch {
		case !ok:
		case d.h.waits(r, w) && len(waiting) < cap(waiting):
			waiting <- struct{}{}
			answering.Go(func() {
				defer func() { <-waiting }()
				d.h.serveDNS(d.ctx, w, r)
			})
		default:
			d.h.serveDNS(d.ctx, w, r)
		}
		if d.ctx.Err() != nil {
			return
		}
	}
}
