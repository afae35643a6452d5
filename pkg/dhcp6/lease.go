package dhcp6

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"math"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// asking is what a client's IA (IA_NA or IA_PD) asks for.
type asking int

const (
	soliciting asking = iota // an address (or prefix) offered: nothing committed
	requesting               // one granted: a Request, or a Solicit with rapid commit
	renewing                 // its lease extended, by the server that granted it
	rebinding                // its lease extended, by any server
)

// As DHCPv4's: how long a lease's commit is waited for; what a node without the
// quorum keeps short of a committed expiry; how long a declined address rests.
const (
	commitWait        = 2 * time.Second
	skewMargin        = 5 * time.Second
	declineQuarantine = 10 * time.Minute
)

// tries bounds how often a Request picks another address when the one it picked
// was granted to another client meanwhile.
const tries = 4

// maxScan bounds how many addresses one pick looks at in each range.
const maxScan = 1 << 16

// ia is an IA the client's message carries: an IA_NA (non-temporary addresses), or an
// IA_PD (prefixes delegated to a router).
type ia struct {
	id    [4]byte
	pd    int          // an IA_PD's: the length of the prefixes its subnet delegates; 0: an IA_NA
	asked []netip.Addr // the addresses, or the prefixes' first addresses, the client names
}

func naOf(o *dhcpv6.OptIANA) ia {
	r := ia{id: o.IaId}
	for _, a := range o.Options.Addresses() {
		if ip, ok := netip.AddrFromSlice(a.IPv6Addr); ok {
			r.asked = append(r.asked, ip.Unmap())
		}
	}
	return r
}

func pdOf(o *dhcpv6.OptIAPD, sn site.Subnet) ia {
	r := ia{id: o.IaId, pd: sn.Delegate.Length}
	for _, p := range o.Options.Prefixes() {
		if p.Prefix == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(p.Prefix.IP); ok {
			r.asked = append(r.asked, ip.Unmap())
		}
	}
	return r
}

// client is the lease's client: the DUID, the IAID, and "/pd" for an IA_PD's.
func (r ia) client(duid string) string {
	k := duid + "/" + hex.EncodeToString(r.id[:])
	if r.pd != 0 {
		k += "/pd"
	}
	return k
}

// with is the IA holding a (an address, or the prefix a/pd) for lt, renewed at half
// of it and rebound at four fifths.
func (r ia) with(a netip.Addr, lt time.Duration) dhcpv6.Option {
	if r.pd != 0 {
		o := &dhcpv6.OptIAPD{IaId: r.id, T1: lt / 2, T2: lt * 4 / 5}
		o.Options.Add(&dhcpv6.OptIAPrefix{PreferredLifetime: lt, ValidLifetime: lt, Prefix: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(r.pd, 128)}})
		return o
	}
	o := &dhcpv6.OptIANA{IaId: r.id, T1: lt / 2, T2: lt * 4 / 5}
	o.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: a.AsSlice(), PreferredLifetime: lt, ValidLifetime: lt})
	return o
}

// status is the IA holding only a status.
func (r ia) status(code iana.StatusCode, msg string) dhcpv6.Option {
	st := &dhcpv6.OptStatusCode{StatusCode: code, StatusMessage: msg}
	if r.pd != 0 {
		o := &dhcpv6.OptIAPD{IaId: r.id}
		o.Options.Add(st)
		return o
	}
	o := &dhcpv6.OptIANA{IaId: r.id}
	o.Options.Add(st)
	return o
}

// lease answers the client's IA req as how asks: the IA with an address (or a
// prefix) and its lifetimes, or with a status; ok says it holds one. answer is false
// when this node cannot say now (behind the cluster's log, without the quorum, a
// commit that failed): the client is not answered, and asks again or another node
// answers. The name DNS gives an address goes to x.named.
func (s *Service) lease(ctx context.Context, x *exchange, req ia, how asking) (out dhcpv6.Option, ok, answer bool) {
	m := s.ipam.Model()
	lt := s.site.Load().DHCP.LeaseTime
	now := s.now()
	if h, a, ok := reservation(m, x.sn, x.duid, x.mac); ok && req.pd == 0 {
		x.named = h
		return req.with(a, lt), true, true
	}
	client := req.client(x.duid)
	if how == renewing || how == rebinding {
		return s.renew(ctx, x, client, req, now)
	}
	if s.opts.CaughtUp != nil && !s.opts.CaughtUp() {
		return nil, false, false // an address from this model may be another's since
	}
	if _, held := m.LeaseOfClient(client); how == soliciting && !held && !s.mine(x.duid) {
		return nil, false, false // another node's client
	}
	if !s.quorum() {
		return nil, false, false // nothing new without the quorum
	}
	var hint netip.Addr
	if len(req.asked) > 0 {
		hint = req.asked[0]
	}
	name := x.name
	if req.pd != 0 {
		name = "" // a prefix has no name
	}
	var tried []netip.Addr
	for range tries {
		a, found := pick(m, x.sn, req.pd, client, hint, now, tried)
		if !found {
			break
		}
		if how == soliciting {
			return req.with(a, lt), true, true
		}
		expires := now.Add(lt).Truncate(time.Second)
		c := ipam.CommitLease6{Stamp: ipam.Stamp{At: now}, Subnet: x.sn.Name, Client: client, MAC: x.mac, IP: a, Length: req.pd, Hostname: name, Expires: expires}
		res, err := s.apply(ctx, c)
		switch {
		case err == nil:
			done := res.(ipam.Committed)
			if done.NameKeptBy != "" {
				s.log.Warn("lease hostname is taken: the first keeps it", "hostname", name, "client", client, "kept_by", done.NameKeptBy)
			}
			if req.pd == 0 {
				x.named = done.Hostname
			}
			return req.with(a, expires.Sub(now)), true, true
		case errors.Is(err, ipam.ErrConflict):
			tried, hint, m = append(tried, a), netip.Addr{}, s.ipam.Model() // taken meanwhile: another
		default:
			s.log.Error("lease not stored: no reply", "ip", a, "client", client, "err", err)
			return nil, false, false
		}
	}
	if req.pd != 0 {
		return req.status(iana.StatusNoPrefixAvail, "no prefix is free in subnet "+x.sn.Name+"'s delegation pool"), false, true
	}
	return req.status(iana.StatusNoAddrsAvail, "no address is free in subnet "+x.sn.Name+", and none is reserved for this client's MAC"), false, true
}

// renew extends client's lease of an address (or prefix) of req (or, when req names
// none, the lease it holds), granting it anew; a client without such a lease is told
// NoBinding (RFC 8415 §18.3.4, §18.3.5) and asks again. Without the quorum, a lease
// is given what is left of it, skewMargin short.
func (s *Service) renew(ctx context.Context, x *exchange, client string, req ia, now time.Time) (dhcpv6.Option, bool, bool) {
	m := s.ipam.Model()
	asked := req.asked
	if l, ok := m.LeaseOfClient(client); ok && len(asked) == 0 {
		asked = []netip.Addr{l.IP}
	}
	lt := s.site.Load().DHCP.LeaseTime
	for _, ip := range asked {
		l, ok := m.Lease(ip)
		if !ok || l.Client != client || l.Quarantined() || l.Ended(now) || l.Length != req.pd {
			continue
		}
		expires := now.Add(lt).Truncate(time.Second)
		_, err := s.apply(ctx, ipam.CommitLease6{Stamp: ipam.Stamp{At: now}, Subnet: x.sn.Name, Client: client, MAC: x.mac,
			IP: ip, Length: l.Length, Hostname: l.Hostname, Expires: expires, Renewal: true})
		switch {
		case err == nil:
			x.named = l.Hostname
			return req.with(ip, expires.Sub(now)), true, true
		case errors.Is(err, ipam.ErrConflict):
			continue
		case errors.Is(err, ipam.ErrNoQuorum), errors.Is(err, context.DeadlineExceeded):
			return s.renewWithoutQuorum(x, client, req, ip, now)
		default:
			s.log.Error("renewal not stored: no reply", "ip", ip, "client", client, "err", err)
			return nil, false, false
		}
	}
	return req.status(iana.StatusNoBinding, "no lease of this client's: ask again"), false, true
}

// renewWithoutQuorum answers a renewal the cluster could not commit, this node being
// cut off from its quorum, as DHCPv4's does: the lease gets what is left of it,
// skewMargin short of its committed expiry, and the cluster is told of that promise
// (Options.Promised) before the client is; a lease ended meanwhile, or too close to
// its end, gets no answer. The model read is the latest, not the one the message
// found: an end applied meanwhile may be settled.
func (s *Service) renewWithoutQuorum(x *exchange, client string, req ia, ip netip.Addr, now time.Time) (dhcpv6.Option, bool, bool) {
	from := s.ipam.Applied()
	l, ok := s.ipam.Model().Lease(ip)
	left := (l.Expires.Sub(now) - skewMargin).Truncate(time.Second)
	if !ok || l.Client != client || l.Quarantined() || left < time.Second {
		return nil, false, false
	}
	if s.opts.Promised != nil {
		if err := s.opts.Promised(from, now.Add(left)); err != nil {
			s.log.Error("renewal without the quorum not answered", "ip", ip, "client", client, "err", err)
			return nil, false, false
		}
	}
	x.named = l.Hostname
	return req.with(ip, left), true, true
}

// end applies a Release or Decline of every address and prefix of the client's IAs;
// false: the cluster could not take it now.
func (s *Service) end(ctx context.Context, x exchange, decline bool) bool {
	now := s.now()
	m := s.ipam.Model()
	var ias []ia
	for _, o := range x.m.Options.IANA() {
		ias = append(ias, naOf(o))
	}
	if x.sn.Delegate != nil && !decline { // a Decline is of addresses (RFC 8415 §18.2.8)
		for _, o := range x.m.Options.IAPD() {
			ias = append(ias, pdOf(o, x.sn))
		}
	}
	for _, req := range ias {
		client := req.client(x.duid)
		for _, ip := range req.asked {
			l, ok := m.Lease(ip)
			if !ok || l.Client != client {
				continue // not the client's to end
			}
			var cmd ipam.Command = ipam.ReleaseLease6{Stamp: ipam.Stamp{At: now}, IP: ip, Client: client, Granted: l.Granted}
			if decline {
				cmd = ipam.DeclineLease6{Stamp: ipam.Stamp{At: now}, IP: ip, Client: client, Until: now.Add(declineQuarantine).Truncate(time.Second), LeaseGranted: l.Granted}
			}
			_, err := s.apply(ctx, cmd)
			switch {
			case err == nil:
				if decline {
					s.log.Warn("client declined an address: it is in use on the network; quarantined", "ip", ip, "client", client, "for", declineQuarantine)
				}
			case errors.Is(err, ipam.ErrNotFound), errors.Is(err, ipam.ErrConflict):
				// ended meanwhile
			default:
				s.log.Warn("lease end not stored: no reply", "ip", ip, "client", client, "err", err)
				return false
			}
		}
	}
	return true
}

// apply is the write path, waited for at most commitWait.
func (s *Service) apply(ctx context.Context, cmd ipam.Command) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, commitWait)
	defer cancel()
	return s.ipam.Apply(ctx, cmd)
}

// reservation is the host reserved for the client of DUID duid (in hex) and MAC mac
// (zero: unknown), by its DUID or else its MAC, and the host's IPv6 address on sn.
func reservation(m *ipam.Model, sn site.Subnet, duid string, mac site.MAC) (string, netip.Addr, bool) {
	h, ok := m.HostWithDUID(duid)
	if !ok && !mac.IsZero() {
		h, ok = m.HostWithMAC(mac)
	}
	if ok {
		for _, a := range h.Addrs() { // its ip6, or an IPv6-only host's ip
			if a.Is6() && sn.CIDR.Contains(a) {
				return h.Name, a, true
			}
		}
	}
	return "", netip.Addr{}, false
}

// pick chooses client's address in sn's DHCP ranges at now (pd 0), or its prefix of
// pd bits in sn's delegation pool: the one it holds, else hint (the one it asks for),
// else the first free one from a place in each range (or the pool) that a hash of
// client gives. The place is the same on every box and after a restart, so a client
// that lost its lease is given the same again while it is free, and two clients
// rarely start from one. tried are taken: not picked.
func pick(m *ipam.Model, sn site.Subnet, pd int, client string, hint netip.Addr, now time.Time, tried []netip.Addr) (netip.Addr, bool) {
	free := func(a netip.Addr) bool {
		switch {
		case !a.IsValid() || slices.Contains(tried, a):
			return false
		case pd != 0 && !sn.Delegate.Contains(netip.PrefixFrom(a, pd)):
			return false
		case pd == 0 && !site.InDHCPRange(sn, a):
			return false
		}
		if _, ok := m.HostAt(a); ok {
			return false
		}
		l, ok := m.Lease(a)
		return !ok || l.Ended(now) || (l.Client == client && !l.Declined)
	}
	if l, ok := m.LeaseOfClient(client); ok && free(l.IP) {
		return l.IP, true
	}
	if free(hint) {
		return hint, true
	}
	h := fnv.New64a()
	h.Write([]byte(client))
	sum := h.Sum64()
	if pd != 0 { // the pool's prefixes, 2^(pd - its bits) of them, each 2^(128 - pd) addresses apart
		d := sn.Delegate
		n := uint64(math.MaxUint64)
		if bits := pd - d.Prefix.Bits(); bits < 64 {
			n = 1 << bits
		}
		for i := range min(n, maxScan) {
			if a := shifted(d.Prefix.Addr(), (sum+i)%n, 128-pd); free(a) {
				return a, true
			}
		}
		return netip.Addr{}, false
	}
	for _, r := range sn.Ranges {
		if r.Kind != site.RangeDHCP {
			continue
		}
		n := span(r)
		for i := range min(n, maxScan) {
			if a := plus(r.Start, (sum+i)%n); free(a) {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// shifted is a plus n shifted left by shift bits (at least 64: a delegated prefix of
// at most 64 bits).
func shifted(a netip.Addr, n uint64, shift int) netip.Addr {
	b := a.As16()
	hi := binary.BigEndian.Uint64(b[:8]) + n<<(shift-64)
	binary.BigEndian.PutUint64(b[:8], hi)
	return netip.AddrFrom16(b)
}

// span is how many addresses r holds, at most 2⁶⁴-1.
func span(r site.Range) uint64 {
	s, e := r.Start.As16(), r.End.As16()
	if binary.BigEndian.Uint64(s[:8]) != binary.BigEndian.Uint64(e[:8]) {
		return math.MaxUint64
	}
	n := binary.BigEndian.Uint64(e[8:]) - binary.BigEndian.Uint64(s[8:])
	if n == math.MaxUint64 {
		return n
	}
	return n + 1
}

// plus is the address n after a.
func plus(a netip.Addr, n uint64) netip.Addr {
	b := a.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	if lo+n < lo {
		hi++
	}
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo+n)
	return netip.AddrFrom16(b)
}

// mine says whether this node answers a new client of DUID duid: the nodes of a
// cluster share them by a hash of it, as DHCPv4's share theirs. A client with a lease
// is answered by any node.
func (s *Service) mine(duid string) bool {
	if s.opts.Share == nil {
		return true
	}
	mine, of := s.opts.Share()
	if of <= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(duid))
	return int(h.Sum32()%256)%of == mine
}

func (s *Service) quorum() bool { return s.opts.Quorum == nil || s.opts.Quorum() }
