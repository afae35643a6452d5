package dhcp

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

// switchLog is a log of one box that can lose its quorum: while down it takes
// nothing, as a node in an election or cut off from the others.
type switchLog struct {
	m     *ipam.IPAM
	mu    sync.Mutex
	next  uint64
	down  atomic.Bool
	stall atomic.Bool // the leader is out of reach, and no one knows it yet: a write waits
	// late: a stalled write is not lost but applied late, before the next write (an
	// entry the new leader of a failover commits)
	late atomic.Bool
	kept []ipam.Command
}

func (l *switchLog) Apply(ctx context.Context, cmd ipam.Command) (any, error) {
	if l.down.Load() {
		return nil, ipam.ErrNoQuorum
	}
	if l.stall.Load() {
		<-ctx.Done()
		if l.late.Load() {
			l.mu.Lock()
			l.kept = append(l.kept, cmd)
			l.mu.Unlock()
		}
		return nil, ctx.Err()
	}
	type reply struct {
		v   any
		err error
	}
	done := make(chan reply, 1)
	l.mu.Lock()
	for _, k := range l.kept {
		l.next++
		l.m.Submit(l.next, k, func(any, error) {})
	}
	l.kept = nil
	l.next++
	l.m.Submit(l.next, cmd, func(v any, err error) { done <- reply{v, err} })
	l.mu.Unlock()
	r := <-done
	return r.v, r.err
}

// switchable is a DHCP service whose write path's log can lose its quorum, on the
// test site, its clock now.
func switchable(t *testing.T, now func() time.Time) (*Service, *link, *switchLog, *ipam.IPAM) {
	t.Helper()
	cfg, err := config.Parse("site.yaml", []byte(testSite))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "infrad.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := &switchLog{}
	m, err := ipam.New(ipam.Options{Store: st, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	log.m = m
	t.Cleanup(m.Close)
	if _, err := m.Reconcile(cfg.Source, cfg.IPAM()); err != nil {
		t.Fatal(err)
	}
	s := New(Options{Site: cfg, IPAM: m, Registry: prometheus.NewRegistry(), Now: now})
	return s, &link{name: "br0", addr: netip.MustParseAddr("10.77.0.1")}, log, m
}

// release has hw's client release its lease of ip to s (the test site's server).
func release(t *testing.T, s *Service, l *link, hw net.HardwareAddr, ip netip.Addr) {
	t.Helper()
	s.handle(context.Background(), l, message(t, hw, dhcpv4.MessageTypeRelease, serverID("10.77.0.1"), func(d *dhcpv4.DHCPv4) { d.ClientIPAddr = net.IP(ip.AsSlice()) }))
}

// TestEndsWaitForTheQuorum: a RELEASE that comes while the cluster takes no write (an
// election) is kept, and applied once writes go through again; the client does not
// send it twice.
func TestEndsWaitForTheQuorum(t *testing.T) {
	s, l, log, m := switchable(t, time.Now)
	hw := mac(50)
	ip := netip.MustParseAddr(lease(t, s, l, hw))

	log.down.Store(true)
	release(t, s, l, hw, ip)
	if _, ok := m.Model().Lease(ip); !ok || s.ends.len() != 1 {
		t.Fatalf("during the election: lease kept %v, ends held %d; want the lease and one end held", ok, s.ends.len())
	}
	s.ends.apply(context.Background(), m)
	if s.ends.len() != 1 {
		t.Fatalf("still without the quorum, the end was let go")
	}
	log.down.Store(false)
	if n := s.ends.apply(context.Background(), m); n != 1 || s.ends.len() != 0 {
		t.Fatalf("with the quorum back: %d applied, %d held; want 1 and 0", n, s.ends.len())
	}
	if _, ok := m.Model().Lease(ip); ok {
		t.Errorf("the lease of %s outlived its RELEASE", ip)
	}
}

// TestLateReleaseLeavesALeaseGrantedAgain: a RELEASE kept through an election is
// applied late; if the client has meanwhile been granted the address again, the late
// RELEASE must not end that lease (another client could then be given an address in
// use).
func TestLateReleaseLeavesALeaseGrantedAgain(t *testing.T) {
	now := time.Now()
	s, l, log, m := switchable(t, func() time.Time { return now })
	hw := mac(51)
	ip := netip.MustParseAddr(lease(t, s, l, hw))

	log.down.Store(true)
	release(t, s, l, hw, ip)
	log.down.Store(false)
	now = now.Add(time.Minute)
	if again := netip.MustParseAddr(lease(t, s, l, hw)); again != ip {
		t.Fatalf("the client came back to %s, want its address %s", again, ip)
	}
	s.ends.apply(context.Background(), m)
	if got, ok := m.Model().Lease(ip); !ok || got.MAC.String() != hw.String() {
		t.Errorf("the late RELEASE ended the lease granted after it: %+v %v", got, ok)
	}
}

// TestRenewalWithoutQuorum: cut off from the quorum, a node renews a lease its model
// holds for what is left of it, skewMargin short, and tells the cluster what it
// promised (from which applied index, until when), so that no address it renewed is
// given to another client before. A lease the latest model no longer holds is not
// renewed.
func TestRenewalWithoutQuorum(t *testing.T) {
	now := time.Now()
	s, l, log, m := switchable(t, func() time.Time { return now })
	var promised []uint64
	var until time.Time
	s.promised = func(index uint64, u time.Time) error { promised, until = append(promised, index), u; return nil }
	hw := mac(52)
	ip := netip.MustParseAddr(lease(t, s, l, hw))
	committed, _ := m.Model().Lease(ip)
	renew := func() *dhcpv4.DHCPv4 {
		ack, _ := s.handle(context.Background(), l, message(t, hw, dhcpv4.MessageTypeRequest, func(d *dhcpv4.DHCPv4) { d.ClientIPAddr = net.IP(ip.AsSlice()) }))
		return ack
	}

	log.down.Store(true)
	now = now.Add(time.Minute)
	ack := renew()
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("the renewal without the quorum got %v, want an ACK", ack)
	}
	want := (committed.Expires.Sub(now) - skewMargin).Truncate(time.Second)
	if got := ack.IPAddressLeaseTime(0); got != want {
		t.Errorf("lease time %s, want %s: what is left of the committed lease, %s short", got, want, skewMargin)
	}
	if len(promised) != 1 || promised[0] != m.Applied() || !until.Equal(now.Add(want)) {
		t.Errorf("promised %v until %s, want [%d] until %s", promised, until, m.Applied(), now.Add(want))
	}

	// Just cut off, the node does not know it yet: the commit waits on a leader out of
	// reach. Past commitWait the renewal is answered as without the quorum.
	log.down.Store(false)
	log.stall.Store(true)
	if ack := renew(); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("a renewal whose commit stalled got %v, want an ACK from the committed lease", ack)
	}
	log.stall.Store(false)

	if _, err := m.Apply(context.Background(), ipam.ReleaseLease{Stamp: ipam.Stamp{At: now}, IP: ip}); err != nil {
		t.Fatal(err)
	}
	log.down.Store(true)
	if ack := renew(); ack != nil {
		t.Errorf("a lease ended since was renewed without the quorum: %v", ack.Summary())
	}
}

// TestReleaseEndsARenewalAppliedLate: a node stops waiting for a renewal's commit (the
// leader failed over) and ACKs from the committed lease; the client then releases its
// address; the new leader applies the renewal after all, before the RELEASE. The
// RELEASE ends the lease the renewal made: the pool does not keep an address its
// client gave back until the lease expires.
func TestReleaseEndsARenewalAppliedLate(t *testing.T) {
	now := time.Now()
	s, l, log, m := switchable(t, func() time.Time { return now })
	hw := mac(53)
	ip := netip.MustParseAddr(lease(t, s, l, hw))
	committed, _ := m.Model().Lease(ip)

	log.stall.Store(true)
	log.late.Store(true)
	now = now.Add(time.Minute)
	ack, _ := s.handle(context.Background(), l, message(t, hw, dhcpv4.MessageTypeRequest, func(d *dhcpv4.DHCPv4) { d.ClientIPAddr = net.IP(ip.AsSlice()) }))
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("the renewal whose commit stalled got %v, want an ACK from the committed lease", ack)
	}
	log.stall.Store(false)
	release(t, s, l, hw, ip)
	if got, ok := m.Model().Lease(ip); ok {
		renewed := got.Expires.After(committed.Expires)
		t.Errorf("the lease of %s outlived its client's RELEASE (renewed late: %v): %+v", ip, renewed, got)
	}
}

// TestEndKeptWhenItsCommitStalls: a node just cut off does not know it yet, and the
// commit of a RELEASE waits on a leader out of reach. Past commitWait the RELEASE is
// kept, as one without the quorum is, and applied once writes go through: it is not
// dropped because the cluster could not say whether it made it.
func TestEndKeptWhenItsCommitStalls(t *testing.T) {
	s, l, log, m := switchable(t, time.Now)
	hw := mac(55)
	ip := netip.MustParseAddr(lease(t, s, l, hw))
	log.stall.Store(true)
	release(t, s, l, hw, ip)
	if s.ends.len() != 1 {
		t.Fatalf("a RELEASE whose commit stalled: %d ends kept, want 1", s.ends.len())
	}
	log.stall.Store(false)
	if n := s.ends.apply(context.Background(), m); n != 1 || s.ends.len() != 0 {
		t.Fatalf("with writes back: %d applied, %d kept; want 1 and 0", n, s.ends.len())
	}
	if _, ok := m.Model().Lease(ip); ok {
		t.Errorf("the lease of %s outlived its RELEASE", ip)
	}
}

// TestEndsOfALeaseRenewedElsewhere: in a cluster every node may answer a client's
// broadcast REBIND, and each commits its renewal; the client takes the first ACK and
// later releases (or declines) to that node, which has not yet applied the other
// node's renewal when it reads the lease. The RELEASE ends the lease still, and the
// DECLINE quarantines the address: each names the lease's grant, which a renewal
// keeps, not its expiry.
func TestEndsOfALeaseRenewedElsewhere(t *testing.T) {
	for i, end := range []struct {
		name string
		send func(t *testing.T, s *Service, l *link, hw net.HardwareAddr, ip netip.Addr)
		done func(l ipam.Lease, ok bool) bool
	}{
		{"release", release, func(_ ipam.Lease, ok bool) bool { return !ok }},
		{"decline", func(t *testing.T, s *Service, l *link, hw net.HardwareAddr, ip netip.Addr) {
			s.handle(context.Background(), l, message(t, hw, dhcpv4.MessageTypeDecline, serverID("10.77.0.1"), requested(ip.String())))
		}, func(l ipam.Lease, ok bool) bool { return ok && l.Declined }},
	} {
		t.Run(end.name, func(t *testing.T) {
			now := time.Now()
			s, l, log, m := switchable(t, func() time.Time { return now })
			if _, err := m.Apply(context.Background(), ipam.TrackGrants{Stamp: ipam.Stamp{At: now}}); err != nil {
				t.Fatal(err)
			}
			hw := mac(54 + i)
			ip := netip.MustParseAddr(lease(t, s, l, hw))
			now = now.Add(time.Minute)
			// The other node's renewal, applied before the end.
			log.kept = []ipam.Command{ipam.CommitLease{Stamp: ipam.Stamp{At: now}, Subnet: "lab", MAC: site.MAC(hw), IP: ip,
				Expires: now.Add(time.Hour).Truncate(time.Second), Renewal: true}}
			end.send(t, s, l, hw, ip)
			if len(log.kept) != 0 {
				t.Fatal("the other node's renewal was not applied")
			}
			if got, ok := m.Model().Lease(ip); !end.done(got, ok) {
				t.Errorf("the %s of %s after another node renewed it left %+v (%v)", end.name, ip, got, ok)
			}
		})
	}
}

// TestHeldEndRefusedIsLetGo: a RELEASE kept through an election whose lease is gone
// by the time writes go through (an admin deleted it) is refused, let go, and not
// counted as applied.
func TestHeldEndRefusedIsLetGo(t *testing.T) {
	s, l, log, m := switchable(t, time.Now)
	hw := mac(57)
	ip := netip.MustParseAddr(lease(t, s, l, hw))
	log.down.Store(true)
	release(t, s, l, hw, ip)
	log.down.Store(false)
	if _, err := m.Apply(context.Background(), ipam.ReleaseLease{Stamp: ipam.Stamp{At: time.Now()}, IP: ip}); err != nil {
		t.Fatal(err)
	}
	if n := s.ends.apply(context.Background(), m); n != 0 || s.ends.len() != 0 {
		t.Errorf("a held RELEASE of a lease gone: %d applied, %d kept; want 0 and 0", n, s.ends.len())
	}
}
