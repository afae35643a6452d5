package dhcp

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"

	"github.com/infrad/infrad/pkg/ipam"
)

// offers holds the addresses offered and not yet requested. An offer is a promise,
// not a change of the site: it lives here, in memory, and the REQUEST that takes it up
// is checked again by the write path, in the transaction that writes the lease. What
// offers decide is only which address to offer; they never grant one.
type offers struct {
	now func() time.Time

	mu     sync.Mutex
	byIP   map[netip.Addr]offer
	recent map[ipam.MAC]netip.Addr // the last address offered to each client, to give it again
	cursor map[ipam.Range]netip.Addr
}

type offer struct {
	mac   ipam.MAC
	until time.Time
}

// offerHold is how long an offered address waits for the client's REQUEST.
const offerHold = 30 * time.Second

// maxScan bounds how many addresses one offer looks at.
const maxScan = 1 << 16

func newOffers(now func() time.Time) *offers {
	return &offers{now: now, byIP: map[netip.Addr]offer{}, recent: map[ipam.MAC]netip.Addr{}, cursor: map[ipam.Range]netip.Addr{}}
}

// holder says who holds ip in m now: the MAC of its lease or live offer (the zero MAC
// for a quarantine or a host), and whether anyone does. o.mu is held.
func (o *offers) holder(m *ipam.Model, ip netip.Addr, now time.Time) (ipam.MAC, bool) {
	if l, ok := m.Lease(ip); ok && !l.Ended(now) {
		return l.MAC, true
	}
	if _, ok := m.HostAt(ip); ok {
		return ipam.MAC{}, true
	}
	if of, ok := o.byIP[ip]; ok && now.Before(of.until) {
		return of.mac, true
	}
	return ipam.MAC{}, false
}

// Offer picks an address of sn's DHCP ranges for mac and holds it for offerHold: the
// client's lease, else the address it was last offered, else requested, else the next
// free one. It returns false when the pool is exhausted.
//
// A node of a cluster offers from its own part of the pool first (the addresses whose
// number, modulo of, is mine), so that two nodes offering at once rarely offer one
// address to two clients: the second REQUEST would be NAKed. When its part is used
// up, it offers from the others'.
func (o *offers) Offer(m *ipam.Model, sn ipam.Subnet, mac ipam.MAC, requested netip.Addr, mine, of int) (netip.Addr, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	its := func(ip netip.Addr) bool {
		holder, held := o.holder(m, ip, now)
		return ip.IsValid() && ipam.InDHCPRange(sn, ip) && (!held || holder == mac)
	}
	var ip netip.Addr
	lease, _ := m.LeaseOf(mac)
	switch {
	case its(lease.IP):
		ip = lease.IP
	case its(o.recent[mac]):
		ip = o.recent[mac]
	case its(requested):
		ip = requested
	default:
		var ok bool
		ip, ok = o.nextFree(m, sn, now, func(ip netip.Addr) bool {
			a := ip.As4()
			return of <= 1 || int(binary.BigEndian.Uint32(a[:])%uint32(of)) == mine
		})
		if !ok && of > 1 {
			ip, ok = o.nextFree(m, sn, now, func(netip.Addr) bool { return true })
		}
		if !ok {
			return netip.Addr{}, false
		}
	}
	o.byIP[ip] = offer{mac: mac, until: now.Add(offerHold)}
	o.recent[mac] = ip
	return ip, true
}

// nextFree walks sn's DHCP ranges from where the last search stopped, at most once
// round each (and at most maxScan addresses), and returns the first address in part
// that no one holds. o.mu is held.
func (o *offers) nextFree(m *ipam.Model, sn ipam.Subnet, now time.Time, part func(netip.Addr) bool) (netip.Addr, bool) {
	for _, r := range sn.Ranges {
		if r.Kind != ipam.RangeDHCP {
			continue
		}
		start, ok := o.cursor[r]
		if !ok || !r.Contains(start) {
			start = r.Start
		}
		ip := start
		for range maxScan {
			next := ip.Next()
			if !r.Contains(next) {
				next = r.Start
			}
			if _, held := o.holder(m, ip, now); !held && part(ip) {
				o.cursor[r] = next
				return ip, true
			}
			if ip = next; ip == start {
				break
			}
		}
		o.cursor[r] = ip
	}
	return netip.Addr{}, false
}

// OfferedToOther reports whether ip is offered, now, to a client other than mac.
func (o *offers) OfferedToOther(ip netip.Addr, mac ipam.MAC) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	of, ok := o.byIP[ip]
	return ok && of.mac != mac && o.now().Before(of.until)
}

// Taken forgets the offer of ip: it is leased, declined or refused.
func (o *offers) Taken(ip netip.Addr) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.byIP, ip)
}

// Forget drops the client's memory of its last address (it declined it).
func (o *offers) Forget(mac ipam.MAC) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.recent, mac)
}

// Expire forgets the offers that have lapsed, and the clients last seen with them.
func (o *offers) Expire() {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	for ip, of := range o.byIP {
		if !now.Before(of.until) {
			delete(o.byIP, ip)
			if o.recent[of.mac] == ip {
				delete(o.recent, of.mac)
			}
		}
	}
}
