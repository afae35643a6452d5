package dhcp

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// offers holds the addresses offered and not yet requested. An offer is a promise,
// not a change of the site: it lives here, in memory, and the REQUEST that takes it up
// is checked again by the write path, in the transaction that writes the lease. What
// offers decide is only which address to offer; they never grant one.
type offers struct {
	now     func() time.Time
	dropped func() // counts an offer dropped to make room; nil: not counted

	mu     sync.Mutex
	byIP   map[netip.Addr]offer
	recent map[site.MAC]netip.Addr // the address each client was last offered, to give it again
	cursor map[site.Range]netip.Addr
	// made is every offer in the order it was made, the oldest first; an entry whose
	// offer was since taken up, made again or dropped is skipped when it comes first.
	made []made
}

type offer struct {
	mac   site.MAC
	until time.Time
}

type made struct {
	ip    netip.Addr
	until time.Time
}

// offerHold is how long an offered address waits for the client's REQUEST.
const offerHold = 30 * time.Second

// maxOffers bounds the offers waiting for their REQUESTs: past it the oldest is dropped
// (its client, if it asks, is offered an address again). A flood of DISCOVERs from new
// MACs into a large pool would otherwise hold an offer for each for offerHold: at the
// 90,000 a second one core parses, 2.7 million of them (264 MB above idle from a
// million MACs into a /8, bench/flood.sh; 51 MB with this bound, 79 with four times it).
const maxOffers = 1 << 14

// maxScan bounds how many addresses one offer looks at.
const maxScan = 1 << 16

func newOffers(now func() time.Time, dropped func()) *offers {
	return &offers{now: now, dropped: dropped, byIP: map[netip.Addr]offer{}, recent: map[site.MAC]netip.Addr{}, cursor: map[site.Range]netip.Addr{}}
}

// holder says who holds ip in m now: the MAC of its lease or live offer (the zero MAC
// for a quarantine or a host), and whether anyone does. o.mu is held.
func (o *offers) holder(m *ipam.Model, ip netip.Addr, now time.Time) (site.MAC, bool) {
	if l, ok := m.Lease(ip); ok && !l.Ended(now) {
		return l.MAC, true
	}
	if _, ok := m.HostAt(ip); ok {
		return site.MAC{}, true
	}
	if of, ok := o.byIP[ip]; ok && now.Before(of.until) {
		return of.mac, true
	}
	return site.MAC{}, false
}

// Offer picks an address of sn's DHCP ranges for mac and holds it for offerHold: the
// client's lease, else the address it was last offered, else requested, else the next
// free one. It returns false when the pool is exhausted.
//
// A node of a cluster offers from its own part of the pool first (the addresses whose
// number, modulo of, is mine), so that two nodes offering at once rarely offer one
// address to two clients: the second REQUEST would be NAKed. When its part is used
// up, it offers from the others'.
func (o *offers) Offer(m *ipam.Model, sn site.Subnet, mac site.MAC, requested netip.Addr, mine, of int) (netip.Addr, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	its := func(ip netip.Addr) bool {
		holder, held := o.holder(m, ip, now)
		return ip.IsValid() && site.InDHCPRange(sn, ip) && (!held || holder == mac)
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
	until := now.Add(offerHold)
	if prev, ok := o.recent[mac]; ok && prev != ip && o.byIP[prev].mac == mac {
		o.forget(prev) // one offer a client
	}
	o.byIP[ip] = offer{mac: mac, until: until}
	o.recent[mac] = ip
	o.made = append(o.made, made{ip, until})
	for len(o.byIP) > maxOffers {
		if o.dropFirst(func(offer) bool { return true }) && o.dropped != nil {
			o.dropped()
		}
	}
	// The clients' memories of addresses taken up are kept for as many clients again,
	// any of them forgotten past that.
	if len(o.recent) > 2*maxOffers {
		for k, ip := range o.recent {
			if len(o.recent) <= 2*maxOffers {
				break
			}
			if _, held := o.byIP[ip]; !held {
				delete(o.recent, k)
			}
		}
	}
	return ip, true
}

// dropFirst takes the oldest entry of made, and forgets its offer if it is still the
// one made then and drop says so; it reports whether it forgot one. o.mu is held.
func (o *offers) dropFirst(drop func(offer) bool) bool {
	first := o.made[0]
	if of, ok := o.byIP[first.ip]; ok && of.until.Equal(first.until) {
		if !drop(of) {
			return false
		}
		o.forget(first.ip)
		o.made = o.made[1:]
		return true
	}
	o.made = o.made[1:] // taken up, made again or dropped since
	return false
}

// forget drops the offer of ip, and its client's memory of it. o.mu is held.
func (o *offers) forget(ip netip.Addr) {
	if of, ok := o.byIP[ip]; ok {
		delete(o.byIP, ip)
		if o.recent[of.mac] == ip {
			delete(o.recent, of.mac)
		}
	}
}

// nextFree walks sn's DHCP ranges from where the last search stopped, at most once
// round each (and at most maxScan addresses), and returns the first address in part
// that no one holds. o.mu is held.
func (o *offers) nextFree(m *ipam.Model, sn site.Subnet, now time.Time, part func(netip.Addr) bool) (netip.Addr, bool) {
	for _, r := range sn.Ranges {
		if r.Kind != site.RangeDHCP {
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
func (o *offers) OfferedToOther(ip netip.Addr, mac site.MAC) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	of, ok := o.byIP[ip]
	return ok && of.mac != mac && o.now().Before(of.until)
}

// Taken forgets the offer of ip: it is leased, declined or refused. Its client's
// memory of it stays, so that a client that releases its lease and comes back is
// offered the same address.
func (o *offers) Taken(ip netip.Addr) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.byIP, ip)
}

// Forget drops the client's memory of its last address (it declined it).
func (o *offers) Forget(mac site.MAC) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.recent, mac)
}

// Expire forgets the offers that have lapsed, and the clients last seen with them:
// the oldest first, up to the first still held.
func (o *offers) Expire() {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	for len(o.made) > 0 && !now.Before(o.made[0].until) {
		o.dropFirst(func(of offer) bool { return !now.Before(of.until) })
	}
}
