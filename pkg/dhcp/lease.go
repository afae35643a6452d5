package dhcp

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/store"
)

// leaseTable is the lease engine. The store holds every lease and is the truth; this
// table mirrors it in memory for the hot path, and holds the offers, which are only
// promises and are not written. A lease is on disk (fsync) before Commit returns.
type leaseTable struct {
	store *store.Store
	now   func() time.Time

	mu     sync.Mutex
	byIP   map[netip.Addr]ipam.Lease
	byMAC  map[ipam.MAC]netip.Addr // the active lease of each client
	byName map[string]netip.Addr   // the lease of each hostname
	offers map[netip.Addr]offer    // offered, not yet requested
	recent map[ipam.MAC]netip.Addr // the last address of each client, to give it again
	cursor map[ipam.Range]netip.Addr
}

type offer struct {
	mac   ipam.MAC
	until time.Time
}

// offerHold is how long an offered address waits for the client's REQUEST.
const offerHold = 30 * time.Second

// maxScan bounds how many addresses one allocation looks at.
const maxScan = 1 << 16

func newLeaseTable(st *store.Store, now func() time.Time) (*leaseTable, error) {
	t := &leaseTable{
		store:  st,
		now:    now,
		byIP:   map[netip.Addr]ipam.Lease{},
		byMAC:  map[ipam.MAC]netip.Addr{},
		byName: map[string]netip.Addr{},
		offers: map[netip.Addr]offer{},
		recent: map[ipam.MAC]netip.Addr{},
		cursor: map[ipam.Range]netip.Addr{},
	}
	err := st.View(func(tx *store.Tx) error {
		leases, err := store.All[ipam.Lease](tx, store.BucketLeases)
		for _, l := range leases {
			t.index(l)
		}
		return err
	})
	return t, err
}

func (t *leaseTable) index(l ipam.Lease) {
	t.byIP[l.IP] = l
	if !l.Declined {
		t.byMAC[l.MAC] = l.IP
		t.recent[l.MAC] = l.IP
	}
	if l.Hostname != "" {
		t.byName[l.Hostname] = l.IP
	}
}

func (t *leaseTable) unindex(ip netip.Addr) {
	l, ok := t.byIP[ip]
	if !ok {
		return
	}
	delete(t.byIP, ip)
	if !l.Declined && t.byMAC[l.MAC] == ip {
		delete(t.byMAC, l.MAC)
	}
	if l.Hostname != "" && t.byName[l.Hostname] == ip {
		delete(t.byName, l.Hostname)
	}
}

// holder says who holds ip now: the MAC of its lease or live offer, and whether anyone
// does. A declined address is held by the zero MAC.
func (t *leaseTable) holder(ip netip.Addr) (ipam.MAC, bool) {
	if l, ok := t.byIP[ip]; ok {
		return l.MAC, true
	}
	if o, ok := t.offers[ip]; ok && t.now().Before(o.until) {
		return o.mac, true
	}
	return ipam.MAC{}, false
}

// Offer picks an address of sn's DHCP ranges for mac and holds it for offerHold: the
// client's lease, else its last address, else requested, else the next free one. It
// returns false when the pool is exhausted.
func (t *leaseTable) Offer(sn ipam.Subnet, mac ipam.MAC, requested netip.Addr) (netip.Addr, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	mine := func(ip netip.Addr) bool {
		holder, held := t.holder(ip)
		return ip.IsValid() && inDHCPRange(sn, ip) && (!held || holder == mac)
	}
	var ip netip.Addr
	switch {
	case mine(t.byMAC[mac]):
		ip = t.byMAC[mac]
	case mine(t.recent[mac]):
		ip = t.recent[mac]
	case mine(requested):
		ip = requested
	default:
		var ok bool
		if ip, ok = t.nextFree(sn); !ok {
			return netip.Addr{}, false
		}
	}
	t.offers[ip] = offer{mac: mac, until: t.now().Add(offerHold)}
	return ip, true
}

// nextFree walks sn's DHCP ranges from where the last search stopped, at most once
// round each (and at most maxScan addresses), and returns the first address no one holds.
func (t *leaseTable) nextFree(sn ipam.Subnet) (netip.Addr, bool) {
	for _, r := range sn.Ranges {
		if r.Kind != ipam.RangeDHCP {
			continue
		}
		start, ok := t.cursor[r]
		if !ok || !r.Contains(start) {
			start = r.Start
		}
		ip := start
		for range maxScan {
			next := ip.Next()
			if !r.Contains(next) {
				next = r.Start
			}
			if _, held := t.holder(ip); !held {
				t.cursor[r] = next
				return ip, true
			}
			if ip = next; ip == start {
				break
			}
		}
		t.cursor[r] = ip
	}
	return netip.Addr{}, false
}

// Grantable reports whether mac may have ip in sn: it is the client's lease or offer,
// or a free address of a DHCP range. (Reservations are decided by the caller.)
func (t *leaseTable) Grantable(sn ipam.Subnet, mac ipam.MAC, ip netip.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	holder, held := t.holder(ip)
	if held {
		return holder == mac
	}
	return inDHCPRange(sn, ip)
}

// Commit gives ip to mac until now+d, with hostname, releasing any other address the
// client held, and returns once that is on disk. The address must have been checked
// with Grantable or be the client's reservation.
func (t *leaseTable) Commit(mac ipam.MAC, ip netip.Addr, hostname string, d time.Duration) (ipam.Lease, error) {
	l := ipam.Lease{IP: ip, MAC: mac, Hostname: hostname, Expires: t.now().Add(d).Truncate(time.Second)}
	t.mu.Lock()
	prevAtIP, hadIP := t.byIP[ip]
	old, hadOld := t.byMAC[mac]
	oldLease := t.byIP[old]
	if hadOld && old != ip {
		t.unindex(old)
	}
	delete(t.offers, ip)
	t.index(l)
	t.mu.Unlock()

	err := t.store.Batch(func(tx *store.Tx) error {
		if hadOld && old != ip {
			if err := ipam.DeleteLease(tx, oldLease); err != nil {
				return err
			}
		}
		return ipam.PutLease(tx, prevAtIP, l)
	})
	if err != nil {
		t.mu.Lock()
		t.unindex(ip)
		if hadIP {
			t.index(prevAtIP)
		}
		if hadOld && old != ip {
			t.index(oldLease)
		}
		t.mu.Unlock()
		return ipam.Lease{}, fmt.Errorf("commit lease %s: %w", ip, err)
	}
	return l, nil
}

// Release ends mac's lease of ip (mac zero: whoever holds it). It reports whether
// there was such a lease.
func (t *leaseTable) Release(mac ipam.MAC, ip netip.Addr) (bool, error) {
	t.mu.Lock()
	l, ok := t.byIP[ip]
	if !ok || (!mac.IsZero() && l.MAC != mac) {
		t.mu.Unlock()
		return false, nil
	}
	t.unindex(ip)
	t.mu.Unlock()
	err := t.store.Batch(func(tx *store.Tx) error { return ipam.DeleteLease(tx, l) })
	return true, err
}

// Decline quarantines ip, which mac found in use on the network: no one gets it until
// the quarantine ends.
func (t *leaseTable) Decline(mac ipam.MAC, ip netip.Addr, quarantine time.Duration) error {
	t.mu.Lock()
	if holder, held := t.holder(ip); !held || holder != mac {
		t.mu.Unlock()
		return nil
	}
	l := ipam.Lease{IP: ip, Expires: t.now().Add(quarantine).Truncate(time.Second), Declined: true}
	prev := t.byIP[ip]
	t.unindex(ip)
	delete(t.offers, ip)
	delete(t.recent, mac)
	t.byIP[ip] = l
	t.mu.Unlock()
	return t.store.Batch(func(tx *store.Tx) error { return ipam.PutLease(tx, prev, l) })
}

// Expire removes every lease and quarantine that has ended, and forgets stale offers.
func (t *leaseTable) Expire() (int, error) {
	now := t.now()
	t.mu.Lock()
	var gone []netip.Addr
	for ip, l := range t.byIP {
		if l.Expires.Before(now) {
			gone = append(gone, ip)
			t.unindex(ip)
		}
	}
	for ip, o := range t.offers {
		if !now.Before(o.until) {
			delete(t.offers, ip)
		}
	}
	t.mu.Unlock()
	if len(gone) == 0 {
		return 0, nil
	}
	return len(gone), t.store.Update(func(tx *store.Tx) error {
		for _, ip := range gone {
			// The client may have renewed since: delete only what is still expired.
			l, ok, err := store.Get[ipam.Lease](tx, store.BucketLeases, ip.String())
			if err != nil {
				return err
			}
			if ok && l.Expires.Before(now) {
				if err := ipam.DeleteLease(tx, l); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Lease returns the active lease of mac, if any.
func (t *leaseTable) Lease(mac ipam.MAC) (ipam.Lease, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ip, ok := t.byMAC[mac]
	if !ok {
		return ipam.Lease{}, false
	}
	return t.byIP[ip], true
}

// HostnameTaken reports whether another client's lease has hostname.
func (t *leaseTable) HostnameTaken(hostname string, mac ipam.MAC) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ip, ok := t.byName[hostname]
	return ok && t.byIP[ip].MAC != mac
}

func inDHCPRange(sn ipam.Subnet, ip netip.Addr) bool {
	for _, r := range sn.Ranges {
		if r.Kind == ipam.RangeDHCP && r.Contains(ip) {
			return true
		}
	}
	return false
}
