package main

// No address twice, partitions included: a node cut off from the others renews the
// leases its last model holds, while the majority goes on ending leases early and
// granting new ones. A sniffer on the bridge sees every DHCP packet of every node and
// client, and says whether one address was ever ACKed to two clients at once.

import (
	be "encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/infrad/infrad/internal/testenv"
)

// sniffed is one DHCP packet seen on the bridge, with its IP source and destination.
type sniffed struct {
	at       time.Time
	src, dst netip.Addr
	msg      *dhcpv4.DHCPv4
}

// sniffer reads every frame the bridge br0 of namespace ns passes (in promiscuous
// mode: those forwarded from port to port too) and keeps the DHCP messages.
type sniffer struct {
	fd   int
	mu   sync.Mutex
	seen []sniffed
	done chan struct{}
}

func sniff(t *testing.T, ns, bridge string) *sniffer {
	t.Helper()
	s := &sniffer{done: make(chan struct{})}
	var err error
	inNetns(t, ns, func() {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(bridge); err != nil {
			return
		}
		proto := int(htons(unix.ETH_P_ALL))
		if s.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, proto); err != nil {
			return
		}
		if err = unix.Bind(s.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return
		}
		err = unix.SetsockoptPacketMreq(s.fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC})
	})
	if err != nil {
		t.Fatalf("sniffer on %s: %v", bridge, err)
	}
	// A read wakes every half second, so that close is noticed.
	unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 500000})
	go s.read()
	t.Cleanup(s.close)
	return s
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (s *sniffer) read() {
	buf := make([]byte, 65536)
	for {
		select {
		case <-s.done:
			return
		default:
		}
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil {
			continue
		}
		if p, ok := dhcpIn(buf[:n]); ok {
			p.at = time.Now()
			s.mu.Lock()
			s.seen = append(s.seen, p)
			s.mu.Unlock()
		}
	}
}

func (s *sniffer) close() {
	select {
	case <-s.done:
	default:
		close(s.done)
		unix.Close(s.fd)
	}
}

// packets is what the sniffer has seen so far.
func (s *sniffer) packets() []sniffed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// dhcpIn is the DHCP message of an Ethernet frame carrying IPv4 UDP to or from port
// 67 or 68.
func dhcpIn(frame []byte) (sniffed, bool) {
	if len(frame) < 14+20+8 || be.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return sniffed{}, false
	}
	ip := frame[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ip[9] != 17 || len(ip) < ihl+8 {
		return sniffed{}, false
	}
	udp := ip[ihl:]
	sport, dport := be.BigEndian.Uint16(udp), be.BigEndian.Uint16(udp[2:])
	if sport != 67 && sport != 68 && dport != 67 && dport != 68 {
		return sniffed{}, false
	}
	m, err := dhcpv4.FromBytes(udp[8:])
	if err != nil {
		return sniffed{}, false
	}
	return sniffed{src: netip.AddrFrom4([4]byte(ip[12:16])), dst: netip.AddrFrom4([4]byte(ip[16:20])), msg: m}, true
}

// holding is a client's hold on an address, from an ACK to the end of its lease (or
// its RELEASE).
type holding struct {
	mac        string
	from, till time.Time
}

// twice lists every address the packets show ACKed to two clients at once: each ACK
// gives its client the address for the ACK's lease time, a RELEASE ends that early.
func twice(packets []sniffed) []string {
	holds := map[netip.Addr][]holding{}
	for _, p := range packets {
		mac := p.msg.ClientHWAddr.String()
		switch {
		case p.msg.OpCode == dhcpv4.OpcodeBootReply && p.msg.MessageType() == dhcpv4.MessageTypeAck:
			ip, _ := netip.AddrFromSlice(p.msg.YourIPAddr.To4())
			if !ip.IsValid() || ip.IsUnspecified() {
				continue // an ACK to an INFORM gives no address
			}
			holds[ip] = append(holds[ip], holding{mac, p.at, p.at.Add(p.msg.IPAddressLeaseTime(0))})
		case p.msg.OpCode == dhcpv4.OpcodeBootRequest && p.msg.MessageType() == dhcpv4.MessageTypeRelease:
			ip, _ := netip.AddrFromSlice(p.msg.ClientIPAddr.To4())
			for i, h := range holds[ip] {
				if h.mac == mac && h.till.After(p.at) {
					holds[ip][i].till = p.at
				}
			}
		}
	}
	var out []string
	for ip, hs := range holds {
		for i, a := range hs {
			for _, b := range hs[i+1:] {
				if a.mac != b.mac && a.from.Before(b.till) && b.from.Before(a.till) {
					out = append(out, fmt.Sprintf("%s: %s from %s to %s, and %s from %s to %s", ip, a.mac, a.from.Format("15:04:05.000"), a.till.Format("15:04:05.000"),
						b.mac, b.from.Format("15:04:05.000"), b.till.Format("15:04:05.000")))
				}
			}
		}
	}
	return out
}

// relay is a DHCP relay agent in the client namespace, at 10.78.0.99:67, that the
// test drives one message at a time: it sends each to the nodes it names, and the
// nodes answer it (RFC 2131 §4.1, giaddr), so that a test decides which node hears
// which client — a client beside a cut-off node, or beside the majority.
type relay struct {
	t      *testing.T
	conn   net.PacketConn
	giaddr net.IP
	wait   time.Duration // for an answer
}

func newRelay(t *testing.T, l *clusterLab) *relay {
	return &relay{t: t, conn: listenPacketIn(t, l.cli, "10.78.0.99:67"), giaddr: net.ParseIP("10.78.0.99"), wait: time.Second}
}

// ask sends m to each of servers and returns the first answer to it (nil: none
// within r.wait).
func (r *relay) ask(m *dhcpv4.DHCPv4, servers ...string) *dhcpv4.DHCPv4 {
	m.GatewayIPAddr, m.HopCount = r.giaddr, 1
	for _, s := range servers {
		if _, err := r.conn.WriteTo(m.ToBytes(), &net.UDPAddr{IP: net.ParseIP(s), Port: 67}); err != nil {
			r.t.Error(err)
			return nil
		}
	}
	if m.MessageType() == dhcpv4.MessageTypeRelease {
		return nil // (no answer comes)
	}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(r.wait)
	for {
		r.conn.SetReadDeadline(deadline)
		n, _, err := r.conn.ReadFrom(buf)
		if err != nil {
			return nil
		}
		if reply, err := dhcpv4.FromBytes(buf[:n]); err == nil && reply.TransactionID == m.TransactionID && reply.OpCode == dhcpv4.OpcodeBootReply {
			return reply
		}
	}
}

func (r *relay) message(mac net.HardwareAddr, typ dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(typ)}, mods...)...)
	if err != nil {
		panic(err) // (only a failed random transaction ID)
	}
	return m
}

// doraTill is dora tried up to five times: a cut-off node is known to be down by the
// others only after a few probes, and until then some new clients are its share.
func (r *relay) doraTill(mac net.HardwareAddr, want netip.Addr, servers ...string) (netip.Addr, string, bool) {
	for range 5 {
		if ip, server, ok := r.dora(mac, want, servers...); ok {
			return ip, server, ok
		}
	}
	return netip.Addr{}, "", false
}

// dora runs DISCOVER (to servers, asking for want when it is valid) and REQUEST (to
// the node that offered), and returns the address ACKed and the node that ACKed it.
func (r *relay) dora(mac net.HardwareAddr, want netip.Addr, servers ...string) (netip.Addr, string, bool) {
	var mods []dhcpv4.Modifier
	if want.IsValid() {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(want.AsSlice())))
	}
	offer := r.ask(r.message(mac, dhcpv4.MessageTypeDiscover, mods...), servers...)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		return netip.Addr{}, "", false
	}
	server := offer.ServerIdentifier().String()
	ack := r.ask(r.message(mac, dhcpv4.MessageTypeRequest,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier()))), server)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		return netip.Addr{}, "", false
	}
	ip, _ := netip.AddrFromSlice(ack.YourIPAddr.To4())
	return ip, server, true
}

// renew asks servers to renew mac's lease of ip (RFC 2131 §4.4.5: ciaddr, no server
// identifier; to one server, renewing, or to every one, rebinding), and returns the
// ACK, or nil.
func (r *relay) renew(mac net.HardwareAddr, ip netip.Addr, servers ...string) *dhcpv4.DHCPv4 {
	ack, _ := r.renewWhy(mac, ip, servers...)
	return ack
}

// renewWhy is renew, saying why there is no ACK: no answer, or a NAK and its message.
func (r *relay) renewWhy(mac net.HardwareAddr, ip netip.Addr, servers ...string) (*dhcpv4.DHCPv4, string) {
	reply := r.ask(r.message(mac, dhcpv4.MessageTypeRequest, func(d *dhcpv4.DHCPv4) { d.ClientIPAddr = ip.AsSlice() }), servers...)
	switch {
	case reply == nil:
		return nil, "no answer"
	case reply.MessageType() != dhcpv4.MessageTypeAck:
		return nil, fmt.Sprintf("%s from %s: %q", reply.MessageType(), reply.ServerIdentifier(), reply.Message())
	}
	return reply, ""
}

// release gives mac's lease of ip back to server.
func (r *relay) release(mac net.HardwareAddr, ip netip.Addr, server string) {
	r.ask(r.message(mac, dhcpv4.MessageTypeRelease, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP(server))),
		func(d *dhcpv4.DHCPv4) { d.ClientIPAddr = ip.AsSlice() }), server)
}

// TestClusterNoAddressTwice: three nodes; in each round one is cut off from the
// others while clients reach every node, and the two sequences that gave an address
// to two clients run against it:
//   - a client whose lease a majority node granted RELEASEs it there; a new client
//     asks the majority for that address; the old client DISCOVERs beside the cut-off
//     node, which still holds its lease, and takes it up there;
//   - an admin deletes, on the majority, the lease of a client the cut-off node
//     granted; a new client asks the majority for that address; the old client
//     renews at the cut-off node.
//
// After the partition heals (and, every other round from the first, the cut-off node
// is killed and started again), new clients ask for both addresses. The sniffer on the bridge must
// never see one address ACKed to two clients at once.
func TestClusterNoAddressTwice(t *testing.T) {
	l := newClusterLab(t, 3, false)
	l.form(t)
	for _, n := range l.nodes {
		testenv.WaitFor(t, n.name+" to count three DHCP servers", func() bool {
			st, ok := l.status(t, n)
			return ok && st.DHCPServers == 3
		})
	}
	sn := sniff(t, l.sw, "br0")
	r := newRelay(t, l)
	var all []string
	for _, n := range l.nodes {
		all = append(all, n.addr)
	}
	nodeAt := func(addr string) *clusterNode {
		return l.nodes[slices.IndexFunc(l.nodes, func(n *clusterNode) bool { return n.addr == addr })]
	}
	macOf := func(round, who int) net.HardwareAddr {
		return net.HardwareAddr{0x52, 0x54, 0x00, 0x7a, byte(round), byte(who)}
	}
	acked := 0
	const rounds = 6
	for round := range rounds {
		// The second sequence's client first: the node that grants it is cut off.
		a2 := macOf(round, 2)
		ip2, server, ok := r.dora(a2, netip.Addr{}, all...)
		if !ok {
			t.Fatalf("round %d: no lease for %s", round, a2)
		}
		cut := nodeAt(server)
		var majority []string
		for _, n := range l.nodes {
			if n != cut {
				majority = append(majority, n.addr)
			}
		}
		// The first sequence's client: a lease a majority node grants.
		var a1 net.HardwareAddr
		var ip1 netip.Addr
		var granter string
		for try := 0; ; try++ {
			a1 = macOf(round, 16+try)
			if ip1, granter, ok = r.dora(a1, netip.Addr{}, all...); ok && granter != cut.addr {
				break
			}
			if try == 20 {
				t.Fatalf("round %d: no majority node granted a lease in 20 tries", round)
			}
		}
		acked += 2
		for _, n := range l.nodes {
			testenv.WaitFor(t, n.name+" to hold both leases", func() bool {
				ls, _ := l.tryLeases(n)
				return slices.ContainsFunc(ls, func(le lease) bool { return le.IP == ip1.String() }) && slices.ContainsFunc(ls, func(le lease) bool { return le.IP == ip2.String() })
			})
		}

		l.partition(t, cut, true)
		testenv.WaitFor(t, cut.name+" to see it has no quorum", func() bool {
			st, ok := l.status(t, cut)
			return ok && !st.Quorum
		})
		other := nodeAt(majority[0])
		if nodeAt(granter) == other {
			other = nodeAt(majority[1])
		}

		// 1. RELEASE on the majority; a new client asks for the address; the old
		// client takes it up again beside the cut-off node.
		r.release(a1, ip1, granter)
		testenv.WaitFor(t, "the release applied on the majority", func() bool {
			ls, err := l.tryLeases(other)
			return err == nil && !slices.ContainsFunc(ls, func(le lease) bool { return le.IP == ip1.String() && le.MAC == a1.String() && le.Released == 0 })
		})
		b1 := macOf(round, 100)
		if got, _, ok := r.doraTill(b1, ip1, majority...); !ok {
			t.Errorf("round %d: the majority granted a new client nothing", round)
		} else if got == ip1 {
			t.Errorf("round %d: the majority gave %s, released on it, to a new client while %s may still renew it", round, ip1, cut.name)
		}
		if got, server, ok := r.doraTill(a1, ip1, cut.addr); !ok || got != ip1 || server != cut.addr {
			t.Errorf("round %d: beside the cut-off node, the released client got %s from %s (%v), want %s again", round, got, server, ok, ip1)
		}

		// 2. An admin deletes a lease on the majority; a new client asks for the
		// address; the old client renews at the cut-off node.
		testenv.WaitFor(t, fmt.Sprintf("round %d: the lease of %s deleted", round, ip2), func() bool {
			// (The waits above ask faster than the API's rate limit: a 429 is asked again.)
			out, _ := l.curl(other, "-X", "DELETE", "-w", "\n%{http_code}", "http://127.0.0.1:8080/api/v1/dhcp/leases/"+ip2.String())
			if !strings.HasSuffix(out, "\n204") && !strings.HasSuffix(out, "\n429") {
				t.Fatalf("round %d: delete the lease of %s: %s", round, ip2, out)
			}
			return strings.HasSuffix(out, "\n204")
		})
		b2 := macOf(round, 101)
		if got, _, ok := r.doraTill(b2, ip2, majority...); !ok {
			t.Errorf("round %d: the majority granted a new client nothing", round)
		} else if got == ip2 {
			t.Errorf("round %d: the majority gave %s, deleted on it, to a new client while %s may still renew it", round, ip2, cut.name)
		}
		if r.renew(a2, ip2, cut.addr) == nil {
			t.Errorf("round %d: the cut-off node did not renew the lease it holds of %s", round, ip2)
		}
		acked += 4

		// Healed, the cut-off node applies the ends; what it renewed meanwhile still
		// holds the addresses for their clients.
		l.partition(t, cut, false)
		testenv.WaitFor(t, cut.name+" back with the quorum", func() bool {
			st, ok := l.status(t, cut)
			return ok && st.Quorum
		})
		testenv.WaitFor(t, cut.name+" to catch up", func() bool {
			mine, err1 := l.tryLeases(cut)
			theirs, err2 := l.tryLeases(other)
			return err1 == nil && err2 == nil && slices.Equal(mine, theirs)
		})
		// Every other round it is killed and started again: that must not make it
		// forget what it renewed. (Round 0 is the one that tells: from then on the
		// renewals of earlier rounds, which last most of the lease time, hold back
		// every settlement.)
		if round%2 == 0 {
			l.kill(cut)
			l.start(t, cut, "")
		}
		// For a few of the probes' rounds (the leader hears the healed node vouch
		// for the ends, and settles what it may), new clients ask for both.
		tick := time.NewTicker(500 * time.Millisecond)
		for i := range 8 {
			for j, want := range []netip.Addr{ip1, ip2} {
				c := macOf(round, 110+2*i+j)
				if got, server, ok := r.dora(c, want, all...); ok && got == want {
					t.Errorf("round %d: after the partition healed, %s went to a third client while its old client's renewal lasts", round, want)
				} else if ok {
					r.release(c, got, server)
				}
			}
			<-tick.C
		}
		tick.Stop()
		if t.Failed() {
			break
		}
	}
	var packets []sniffed
	acks := 0
	testenv.WaitFor(t, fmt.Sprintf("the sniffer to see the %d ACKs the clients took", acked), func() bool {
		packets, acks = sn.packets(), 0
		for _, p := range packets {
			if p.msg.OpCode == dhcpv4.OpcodeBootReply && p.msg.MessageType() == dhcpv4.MessageTypeAck {
				acks++
			}
		}
		return acks >= acked
	})
	if both := twice(packets); len(both) > 0 {
		t.Errorf("addresses ACKed to two clients at once:\n%s", strings.Join(both, "\n"))
	}
	t.Logf("%d DHCP packets on the bridge, %d ACKs", len(packets), acks)
}

// TestClusterRestartedBehind: a node restarts on its old data while changes were made
// without it, cut off so that it cannot catch up. Its DNS answers the zones SERVFAIL,
// so that resolvers ask another name server, and never the stale answer unless the
// wait is over and its log says it answers from what it has; healed, it answers the
// change.
func TestClusterRestartedBehind(t *testing.T) {
	l := newClusterLab(t, 3, false)
	l.form(t)
	late := l.nodes[2]
	l.kill(late)
	testenv.WaitFor(t, "a write while "+late.name+" is down", func() bool { ok, _ := l.putHost(l.nodes[0], "w5", "10.78.0.25"); return ok })
	l.partition(t, late, true)
	late.p = startCmd(t, l.dir, "ip", "netns", "exec", late.ns, binary, "serve", "-c", l.site, "--node", late.name, "--data", late.data)
	testenv.WaitFor(t, late.name+" to answer DNS", func() bool {
		out, _ := exec.Command("ip", "netns", "exec", l.cli, "dig", "@"+late.addr, "-p", "1053", "+tries=1", "+time=1", "lab.test", "SOA").Output()
		return strings.Contains(string(out), "status:")
	})
	if out, _ := l.curl(late, "-w", "\n%{http_code}", "http://127.0.0.1:8080/readyz?read=1"); !strings.HasSuffix(out, "\n503") || !strings.Contains(out, `"behind": true`) {
		t.Errorf("/readyz?read=1 on the node behind: %s, want 503 saying it is behind", out)
	}
	out, _ := exec.Command("ip", "netns", "exec", l.cli, "dig", "@"+late.addr, "-p", "1053", "+tries=1", "+time=2", "w5.lab.test").Output()
	switch said := strings.Contains(late.p.output.String(), "has not caught up with the cluster"); {
	case strings.Contains(string(out), "status: SERVFAIL"):
	case said && strings.Contains(string(out), "status: NXDOMAIN"):
		t.Logf("%s waited for the cluster longer than it does, and says it answers from what it has", late.name)
	default:
		t.Errorf("the restarted node, behind the cluster, answered:\n%s", out)
	}
	l.partition(t, late, false)
	testenv.WaitFor(t, late.name+" to catch up and answer the change", func() bool { return l.dig(late.addr, "w5.lab.test") == "10.78.0.25" })
}

// TestClusterFailoverLosesNoClient: three nodes; each in turn is killed (SIGKILL) and
// started again, and then cut off from the others for a while, while one relayed
// client population comes, renews (unicast, to the node that granted it, as RFC 2131
// §4.4.5 has it; rebinding, to every node, when that node is down) and releases,
// and perfdhcp's clients keep coming beside them.
// Every renewal sent to a live node is ACKed, every rebind is ACKed by some node,
// every RELEASE a live node heard is applied, and at the end the leases held are
// exactly the clients that believe they hold one: the pool does not leak.
func TestClusterFailoverLosesNoClient(t *testing.T) {
	l := newClusterLab(t, 3, false)
	l.form(t)
	r := newRelay(t, l)
	var all []string
	for _, n := range l.nodes {
		all = append(all, n.addr)
	}
	var downMu sync.Mutex
	down := map[string]bool{} // killed and not yet ready again
	isDown := func(addr string) bool { downMu.Lock(); defer downMu.Unlock(); return down[addr] }
	setDown := func(addr string, d bool) { downMu.Lock(); down[addr] = d; downMu.Unlock() }

	type holding struct {
		ip     netip.Addr
		server string
	}
	held := map[string]holding{} // what each client believes it holds, by MAC
	unsure := map[string]bool{}  // clients that gave up without an ACK: a lease may be theirs
	var released []struct {
		mac string
		ip  netip.Addr
	}
	var renewals, rebinds, lost []string
	stop := make(chan struct{})
	var clients sync.WaitGroup
	var op sync.Mutex // held by the clients during each exchange
	op.Lock()
	clients.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; ; i++ {
			op.Unlock()
			select {
			case <-stop:
				return
			default:
			}
			op.Lock()
			macs := slices.Sorted(maps.Keys(held))
			r.wait = time.Second
			switch a := rng.IntN(20); {
			case a < 5 || len(macs) < 10: // a new client; it asks again, as clients do, when no ACK comes
				mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x7b, byte(i >> 8), byte(i)}
				r.wait = 3 * time.Second
				for range 3 {
					if ip, server, ok := r.dora(mac, netip.Addr{}, all...); ok {
						held[mac.String()] = holding{ip, server}
						delete(unsure, mac.String())
						break
					}
					unsure[mac.String()] = true // its REQUEST may have been committed
				}
			case a < 17: // a renewal, or a rebind when its server is down
				mac, _ := net.ParseMAC(macs[rng.IntN(len(macs))])
				h := held[mac.String()]
				to, what, kind := []string{h.server}, &renewals, "renewal"
				if isDown(h.server) {
					to, what, kind = all, &rebinds, "rebind"
				}
				r.wait = 3 * time.Second // a commit waits out an election
				ack, why := r.renewWhy(mac, h.ip, to...)
				*what = append(*what, mac.String())
				if ack == nil {
					lost = append(lost, fmt.Sprintf("%s %s of %s to %v: %s", time.Now().Format("15:04:05.000"), kind, h.ip, to, why))
					continue
				}
				held[mac.String()] = holding{h.ip, ack.ServerIdentifier().String()}
			default: // a release, to its server
				mac, _ := net.ParseMAC(macs[rng.IntN(len(macs))])
				h := held[mac.String()]
				if isDown(h.server) {
					continue // (a client whose server is down keeps its lease until it can rebind)
				}
				r.release(mac, h.ip, h.server)
				delete(held, mac.String())
				released = append(released, struct {
					mac string
					ip  netip.Addr
				}{mac.String(), h.ip})
			}
		}
	})
	time.Sleep(3 * time.Second)                                       // clients come, renew and release while all is well
	perf := perfdhcpIn(t, l.addClient(t, "pf", "10.78.0.98"), 20, 40) // and beside them, new clients keep coming
	for i, n := range l.nodes {
		op.Lock() // no client waits on n's answer when it dies: from now its clients rebind
		setDown(n.addr, true)
		op.Unlock()
		time.Sleep(time.Second) // the RELEASEs on their way are committed
		l.kill(n)
		time.Sleep(4 * time.Second) // the others notice (liveFor), the clients meet a dead node
		l.start(t, n, "")
		setDown(n.addr, false)
		cut := l.nodes[(i+2)%len(l.nodes)] // killed two rounds on: the RELEASEs it kept are applied by then
		l.partition(t, cut, true)
		testenv.WaitFor(t, cut.name+" to see it has no quorum", func() bool {
			st, ok := l.status(t, cut)
			return ok && !st.Quorum
		})
		time.Sleep(3 * time.Second) // its clients renew beside it
		l.partition(t, cut, false)
		testenv.WaitFor(t, cut.name+" back with the quorum", func() bool {
			st, ok := l.status(t, cut)
			return ok && st.Quorum
		})
		time.Sleep(3 * time.Second) // clients come, renew and release while all is well
	}
	close(stop)
	clients.Wait()
	if perfACKs(t, perf) == 0 {
		t.Error("perfdhcp's clients got no ACK across the failovers")
	}
	for _, n := range l.nodes {
		testenv.WaitFor(t, n.name+" to apply the RELEASEs it kept", func() bool {
			out, err := l.curl(n, "-f", "http://127.0.0.1:8080/metrics")
			return err == nil && strings.Contains(out, "\ninfrad_dhcp_ends_waiting 0\n")
		})
	}

	if len(released) == 0 {
		t.Error("no client released its lease: the RELEASEs went untried")
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d renewals and rebinds went unanswered or NAKed:\n%s", len(lost), len(renewals)+len(rebinds), strings.Join(lost, "\n"))
	}
	var leases []lease
	testenv.WaitFor(t, "every node to list the same leases", func() bool {
		first, err := l.tryLeases(l.nodes[0])
		for _, n := range l.nodes[1:] {
			other, err2 := l.tryLeases(n)
			if err != nil || err2 != nil || !slices.Equal(first, other) {
				return false
			}
		}
		leases = first
		return true
	})
	live := map[string]string{}
	for _, le := range leases {
		if !le.Declined && le.Released == 0 && !unsure[le.MAC] && strings.HasPrefix(le.MAC, "52:54:00:7b:") {
			live[le.MAC] = le.IP
		}
	}
	for _, rel := range released {
		if ip, ok := live[rel.mac]; ok && ip == rel.ip.String() {
			t.Errorf("%s released %s, and the lease is still live", rel.mac, rel.ip)
		}
	}
	for mac, h := range held {
		if live[mac] != h.ip.String() {
			t.Errorf("%s believes it holds %s; the cluster says %q", mac, h.ip, live[mac])
		}
	}
	if len(live) != len(held) {
		var extra []string
		for mac, ip := range live {
			if _, ok := held[mac]; !ok {
				extra = append(extra, mac+" "+ip)
			}
		}
		t.Errorf("%d live leases for %d clients that hold one: the pool leaks: %v", len(live), len(held), extra)
	}
	t.Logf("%d clients hold leases (and %d gave up without an ACK); %d renewals, %d rebinds, %d releases across three kills, restarts and partitions",
		len(held), len(unsure), len(renewals), len(rebinds), len(released))
}
