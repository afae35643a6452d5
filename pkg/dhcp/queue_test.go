package dhcp

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/infrad/infrad/internal/testenv"
)

// TestRequestsPastTheBoundAreShed: while the write path stalls, the workers (maxCommits
// of them) wait for their commits and as many REQUESTs more wait for a worker; the
// next are dropped and counted, and no goroutine is started for them. A RELEASE that
// comes then is never dropped: it is answered all the same.
func TestRequestsPastTheBoundAreShed(t *testing.T) {
	s, l, log, _ := switchable(t, time.Now)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}) // where the replies go
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	l.conn = conn
	hw := mac(50)
	ip := netip.MustParseAddr(lease(t, s, l, hw))
	unlimited := *s.settings.Load() // one client asks over and over: no rate limit
	unlimited.perMAC = nil
	s.settings.Store(&unlimited)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); s.loops.Wait() }()
	for range maxCommits {
		s.loops.Go(func() { s.commitLoop(ctx) })
	}

	log.stall.Store(true) // every commit waits for its deadline
	renew := func() *dhcpv4.DHCPv4 {
		return message(t, hw, dhcpv4.MessageTypeRequest, func(d *dhcpv4.DHCPv4) { d.ClientIPAddr = net.IP(ip.AsSlice()) })
	}
	const extra = 50
	for range 2*maxCommits + extra {
		s.toCommit(queued{ctx, l, renew()})
	}
	shed := testutil.ToFloat64(s.metrics.shed)
	if shed < extra || shed > maxCommits+extra {
		t.Errorf("%v REQUESTs shed of %d, want at least the %d past the workers and their queue, and no more than those past the queue", shed, 2*maxCommits+extra, extra)
	}
	s.toCommit(queued{ctx, l, message(t, hw, dhcpv4.MessageTypeRelease, serverID("10.77.0.1"), func(d *dhcpv4.DHCPv4) { d.ClientIPAddr = net.IP(ip.AsSlice()) })})
	testenv.WaitFor(t, "the RELEASE answered", func() bool { return len(s.activity.newest("release", 1)) == 1 })
	if got := testutil.ToFloat64(s.metrics.shed); got != shed {
		t.Errorf("the RELEASE was counted shed (%v, was %v)", got, shed)
	}
}
