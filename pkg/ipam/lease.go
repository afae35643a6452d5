package ipam

import (
	"container/heap"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// Lease is an address the DHCP service has handed out; IPAM never gives it to
// anything else while the lease is held. A quarantined lease holds the address for no
// client until it expires: a declined lease is an address a client found in use; a
// released one is a lease ended early (a RELEASE, an admin's delete, its client moving
// to another address) on a site that more than one box serves, whose address waits
// until no box can still believe it leased (SettleEnds).
type Lease struct {
	IP       netip.Addr `json:"ip"`
	MAC      site.MAC   `json:"mac,omitzero"`
	Hostname string     `json:"hostname,omitempty"` // sanitised; its A and PTR are in DNS
	Expires  time.Time  `json:"expires"`
	Declined bool       `json:"declined,omitempty"`
	// Released is the log index of the command that ended the lease early (0: it did
	// not); MAC is still the client that held it, which may take it again.
	Released uint64 `json:"released,omitempty"`
	// Granted is the log index of the command that granted the lease to its client;
	// a renewal keeps it, so it tells the lease a RELEASE ends from one granted after
	// the RELEASE (ReleaseClientLease). 0: granted before the site's boxes all kept it
	// (Shape.Grants).
	Granted uint64 `json:"granted,omitempty"`
	// Client is a DHCPv6 lease's client: its DUID and the IAID of the IA that holds the
	// address, in hex ("<duid>/<iaid>"). A DHCPv4 lease's client is its MAC; a DHCPv6
	// lease has a MAC too when the client's DUID or link-local address tells it.
	Client string `json:"client,omitempty"`
	// Length is a delegated prefix's (DHCPv6's IA_PD): the lease is of the prefix
	// IP/Length, from its subnet's delegation pool. 0: an address.
	Length int `json:"length,omitempty"`
}

// Name is what l is of: its address, or its delegated prefix (IP/Length).
func (l Lease) Name() string {
	if l.Length != 0 {
		return netip.PrefixFrom(l.IP, l.Length).String()
	}
	return l.IP.String()
}

// holder names l's client: a DHCPv6 client by its DUID and IAID, else its MAC.
func (l Lease) holder() string {
	if l.Client != "" {
		return "DHCPv6 client " + l.Client
	}
	return l.MAC.String()
}

// client is who a lease is of: a DHCPv4 client's MAC, or a DHCPv6 client's DUID and
// IAID (id, Lease.Client) and its MAC when known.
type client struct {
	mac site.MAC
	id  string // "": a DHCPv4 client
}

// holds reports whether l is c's.
func (c client) holds(l Lease) bool {
	if c.id != "" || l.Client != "" {
		return l.Client == c.id
	}
	return l.MAC == c.mac
}

// duid is a DHCPv6 client's DUID (in hex); "" for a DHCPv4 client.
func (c client) duid() string {
	d, _, _ := strings.Cut(c.id, "/")
	return d
}

// leaseOf is c's active lease.
func (m *Model) leaseOf(c client) (Lease, bool) {
	if c.id != "" {
		return m.LeaseOfClient(c.id)
	}
	return m.LeaseOf(c.mac)
}

// Quarantined reports whether l holds its address for no client: declined, or
// released and waiting.
func (l Lease) Quarantined() bool { return l.Declined || l.Released != 0 }

// The DHCP service's changes. An offer is not one: it is a promise the DHCP service
// keeps in memory, and the REQUEST that takes it up is checked here again, in the
// transaction that writes the lease.

// CommitLease gives IP to MAC until Expires: a new lease, a renewal, or a client
// coming back. It is refused (an *Error, ErrConflict) unless IP is the client's
// reservation on Subnet, or lies in a DHCP range of Subnet and no host, no other
// client's lease and no quarantine holds it at At. Any other address the client held
// is released, unless its lease ends after Expires: it was granted after this command
// was made (this one is applied late), and the client holds it; the command is then
// refused (once every node's build says so: Shape.Grants), as is a Renewal of a lease
// that has ended (released, deleted or expired). Hostname is dropped when a host, another client's lease, records or the
// zones' name servers have it, when records stand at the address's reverse name, and
// for a reserved client, which is known by its host's name.
type CommitLease struct {
	Stamp
	Subnet   string     `json:"subnet"`
	MAC      site.MAC   `json:"mac"`
	IP       netip.Addr `json:"ip"`
	Hostname string     `json:"hostname,omitempty"` // sanitised
	Expires  time.Time  `json:"expires"`
	// Renewal says the client asked as the holder of the lease (RENEWING or
	// REBINDING: it gave its address as ciaddr): the lease it continues keeps its
	// Lease.Granted. Any other REQUEST is a new grant, even of the address it held.
	Renewal bool `json:"renewal,omitempty"`
}

// Committed is what CommitLease made: the lease, and who kept the hostname it asked
// for when the lease did not get it.
type Committed struct {
	Lease
	NameKeptBy string // "", or the host or lease that has the hostname
}

func (c CommitLease) apply(t *txn) (any, error) {
	return t.commit(grant{Stamp: c.Stamp, subnet: c.Subnet, who: client{mac: c.MAC}, ip: c.IP,
		hostname: c.Hostname, expires: c.Expires, renewal: c.Renewal})
}

// CommitLease6 is CommitLease for a DHCPv6 client, known by its DUID and IAID
// (Client) rather than its MAC: the same rules, on an IPv6 subnet. MAC, when the
// client's DUID or link-local address tells it, finds the client's reservation. A
// name may hold a DHCPv4 lease and a DHCPv6 lease of one machine (one MAC) at once.
//
// With Length, it delegates the prefix IP/Length from Subnet's delegation pool
// (site.Subnet.Delegate) to the client, a router: the prefix must be one of the pool's
// and no other client's; it has no name.
type CommitLease6 struct {
	Stamp
	Subnet   string     `json:"subnet"`
	Client   string     `json:"client"`
	MAC      site.MAC   `json:"mac,omitzero"`
	IP       netip.Addr `json:"ip"`
	Length   int        `json:"length,omitempty"`   // a delegated prefix's; 0: an address
	Hostname string     `json:"hostname,omitempty"` // sanitised
	Expires  time.Time  `json:"expires"`
	Renewal  bool       `json:"renewal,omitempty"` // a Renew or Rebind of the address
}

func (c CommitLease6) apply(t *txn) (any, error) {
	if c.Client == "" || !c.IP.Is6() {
		return nil, invalid("client", "a DHCPv6 lease names its client (DUID and IAID) and an IPv6 address")
	}
	return t.commit(grant{Stamp: c.Stamp, subnet: c.Subnet, who: client{mac: c.MAC, id: c.Client}, ip: c.IP, length: c.Length,
		hostname: c.Hostname, expires: c.Expires, renewal: c.Renewal})
}

// grant is a lease commit of either family.
type grant struct {
	Stamp
	subnet   string
	who      client
	ip       netip.Addr
	length   int // a delegated prefix's; 0: an address
	hostname string
	expires  time.Time
	renewal  bool
}

func (t *txn) commit(c grant) (any, error) {
	sn, ok := t.m.Subnet(c.subnet)
	switch {
	case !ok:
		return nil, notFound(fmt.Sprintf("subnet %q", c.subnet))
	case c.length != 0 && !sn.Delegate.Contains(netip.PrefixFrom(c.ip, c.length)):
		return nil, &Error{Kind: ErrConflict, Msg: fmt.Sprintf("%s/%d is not a prefix subnet %s delegates", c.ip, c.length, sn.Name)}
	case c.length == 0 && !sn.CIDR.Contains(c.ip):
		return nil, &Error{Kind: ErrConflict, Msg: "the address is not on this network"}
	}
	res := Committed{Lease: Lease{IP: c.ip, MAC: c.who.mac, Client: c.who.id, Length: c.length, Hostname: c.hostname, Expires: c.expires}}
	prev, had := t.m.Lease(c.ip)
	continues := had && c.renewal && c.who.holds(prev) && !prev.Quarantined() && !prev.Ended(c.At)
	old, moves := t.m.leaseOf(c.who)
	moves = moves && old.IP != c.ip
	address, reserved := t.reservation(sn, c.who)
	switch {
	case c.length != 0: // a prefix: no reservation, no name
		reserved, res.Hostname = false, ""
		if err := t.free(c.who, c.ip, c.At); err != nil {
			return nil, err
		}
	case reserved && address != c.ip:
		return nil, &Error{Kind: ErrConflict, Msg: "this client's address is " + address.String()}
	case reserved:
		res.Hostname = "" // a reserved client is known by its host's name alone
	default:
		if err := t.grantable(sn, c.who, c.ip, c.At); err != nil {
			return nil, err
		}
	}
	if t.m.shape.Grants && c.renewal && !continues && !reserved {
		// A renewal continues a lease: this one has ended (released, deleted, expired)
		// since the client asked, and a renewal applied late must not make it again.
		// The client, refused, asks for an address anew.
		return nil, &Error{Kind: ErrConflict, Msg: "this client's lease of " + c.ip.String() + " has ended: ask for an address again"}
	}
	if moves && t.m.shape.Grants && old.Expires.After(c.expires) && !old.Ended(c.At) {
		// A REQUEST applied late (its node stopped waiting; the new leader of a
		// failover applied it after all) after the client, unanswered, asked again and
		// was granted another address: the client uses that one.
		return nil, &Error{Kind: ErrConflict, Msg: "this client holds " + old.IP.String() + ", granted after this request was made"}
	}
	if name := res.Hostname; name != "" {
		for _, v6 := range [2]bool{false, true} {
			if l, ok := t.m.LeaseNamed(name, v6); ok && !c.who.holds(l) && l.Ended(c.At) {
				// An ended lease gives its name up: one hostname, one lease of a family,
				// so that a model loaded from the store indexes names as the one that
				// wrote it did.
				l.Hostname = ""
				t.putLease(l)
			}
		}
		if keeper, taken := t.nameKeeper(name, c.who, c.ip); taken {
			res.Hostname, res.NameKeptBy = "", keeper
		}
	}
	if moves {
		t.endEarly(old)
	}
	if t.m.shape.Grants {
		res.Granted = max(t.index, 1)
		if continues && prev.Granted != 0 {
			res.Granted = prev.Granted
		}
	}
	t.putLease(res.Lease)
	return res, nil
}

// reservation is the address on sn of the host reserved for who: by its DUID (a
// DHCPv6 client's), else by its MAC.
func (t *txn) reservation(sn site.Subnet, who client) (netip.Addr, bool) {
	h, ok := t.m.HostWithDUID(who.duid())
	if !ok || who.id == "" {
		h, ok = t.m.HostWithMAC(who.mac)
	}
	if ok {
		for _, a := range h.Addrs() {
			if sn.CIDR.Contains(a) {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// nameKeeper reports whether hostname is taken from who's lease of ip, and by whom
// ("" when who's own host has it): a host, another client's live lease (of ip's
// family; of the other, another machine's), records at the name or at the address's
// reverse name, a name infrad hands out for itself, or the zones' name servers.
func (t *txn) nameKeeper(hostname string, who client, ip netip.Addr) (string, bool) {
	fqdn := t.m.FQDN(hostname)
	if h, ok := t.m.Host(hostname); ok {
		if h.MAC == who.mac && !who.mac.IsZero() || h.DUID != "" && h.DUID == who.duid() {
			return "", true // the host's name is the host's
		}
		return fmt.Sprintf("host %q", h.Name), true // another machine asked for it
	}
	if l, ok := t.m.LeaseNamed(hostname, ip.Is6()); ok && !who.holds(l) {
		return "the lease of " + l.IP.String(), true
	}
	if l, ok := t.m.LeaseNamed(hostname, !ip.Is6()); ok && (l.MAC != who.mac || who.mac.IsZero()) {
		return "the lease of " + l.IP.String() + ", another machine's", true
	}
	if t.m.HasRecords(fqdn) {
		return "the records at " + string(fqdn), true
	}
	if rev := site.ReverseName(ip); t.m.HasRecords(rev) {
		return "the records at " + string(rev), true
	}
	if slices.Contains(t.m.shape.DNS.Services, fqdn) {
		return "infrad, whose services the name is", true
	}
	owner := t.m.derivedOwner(fqdn, "")
	return owner, owner != ""
}

// grantable refuses ip to who unless ip is in a DHCP range of sn and free at now, or
// already who's.
func (t *txn) grantable(sn site.Subnet, who client, ip netip.Addr, now time.Time) error {
	if !site.InDHCPRange(sn, ip) {
		return &Error{Kind: ErrConflict, Msg: "the address is not in a DHCP range of subnet " + sn.Name}
	}
	if h, ok := t.m.HostAt(ip); ok {
		return &Error{Kind: ErrConflict, Msg: fmt.Sprintf("the address is host %q's", h.Name)}
	}
	return t.free(who, ip, now)
}

// free refuses ip (an address, or a delegated prefix's) to who when another client's
// live lease or a quarantine holds it at now.
func (t *txn) free(who client, ip netip.Addr, now time.Time) error {
	if l, ok := t.m.Lease(ip); ok && !l.Ended(now) && (l.Declined || !who.holds(l)) {
		return &Error{Kind: ErrConflict, Msg: "the address is not this client's"}
	}
	return nil
}

// endEarly ends l before its expiry. On a site that more than one box serves, a box
// cut off from the others may still believe l leased and renew it to its client, until
// l.Expires at most: l's address is quarantined (Released) until then, or until every
// box has applied this end (SettleEnds). One box knows at once.
func (t *txn) endEarly(l Lease) {
	if t.m.shape.DHCPServers <= 1 || l.Ended(t.at) || l.Quarantined() {
		t.deleteLease(l.IP)
		return
	}
	t.putLease(Lease{IP: l.IP, MAC: l.MAC, Client: l.Client, Length: l.Length, Expires: l.Expires, Released: max(t.index, 1)})
}

// ReleaseLease ends the lease of IP; MAC, when not zero, must be its client's. It is
// refused (ErrNotFound) when there is no such lease, and (ErrConflict) when the lease
// was released already and its address waits (Lease.Released).
type ReleaseLease struct {
	Stamp
	IP  netip.Addr `json:"ip"`
	MAC site.MAC   `json:"mac,omitzero"`
	// Expires, when set, is the expiry of the lease the client released, as the node
	// that heard the RELEASE knew it: a lease renewed or granted again since (a RELEASE
	// kept through an election is applied late) is not ended by it.
	Expires time.Time `json:"expires,omitzero"`
}

func (c ReleaseLease) apply(t *txn) (any, error) {
	var mine func(Lease) bool // anyone's
	if !c.MAC.IsZero() {
		mine = func(l Lease) bool { return l.MAC == c.MAC }
	}
	return t.release(c.IP, mine, func(l Lease) bool { return c.Expires.IsZero() || l.Expires.Equal(c.Expires) })
}

// ReleaseClientLease is a DHCP client's RELEASE of IP. It ends MAC's lease of IP
// granted by the command at the log's index Granted, however often renewed since,
// or whose expiry is one of Expires: those of the client's commits the node that
// heard the RELEASE had sent to the log without learning their outcome (the new
// leader of a failover may apply one after all, before the RELEASE), and, for a
// lease granted before grants were kept (Lease.Granted 0), the committed expiry the
// node knew. A lease granted again after the RELEASE (one applied late, kept through
// an election) has another index and expiry, and lives. The expiry alone cannot tell
// the lease a RELEASE ends: another node may have renewed it since the node read it,
// answering the client's broadcast REBIND too.
// A type of its own, not fields of ReleaseLease: a build before it would read the
// entry as ReleaseLease, refuse what this build applies, and the stores would drift.
type ReleaseClientLease struct {
	Stamp
	IP      netip.Addr  `json:"ip"`
	MAC     site.MAC    `json:"mac"`
	Granted uint64      `json:"granted,omitempty"`
	Expires []time.Time `json:"expires,omitempty"`
}

func (c ReleaseClientLease) apply(t *txn) (any, error) {
	if c.MAC.IsZero() || (c.Granted == 0 && len(c.Expires) == 0) {
		return nil, invalid("mac", "a client's release names the client and the lease it ends")
	}
	who := client{mac: c.MAC}
	return t.release(c.IP, who.holds, func(l Lease) bool {
		return (c.Granted != 0 && l.Granted == c.Granted) || slices.ContainsFunc(c.Expires, l.Expires.Equal)
	})
}

// ReleaseLease6 is a DHCPv6 client's Release of IP: it ends Client's lease of IP
// granted by the command at the log's index Granted (0: whichever it holds).
type ReleaseLease6 struct {
	Stamp
	IP      netip.Addr `json:"ip"`
	Client  string     `json:"client"`
	Granted uint64     `json:"granted,omitempty"`
}

func (c ReleaseLease6) apply(t *txn) (any, error) {
	if c.Client == "" {
		return nil, invalid("client", "a client's release names the client")
	}
	who := client{id: c.Client}
	return t.release(c.IP, who.holds, func(l Lease) bool { return c.Granted == 0 || l.Granted == c.Granted })
}

// TrackGrants turns on Shape.Grants: from it on, each lease keeps the index of its
// grant (Lease.Granted), and a CommitLease applied late does not move its client from
// an address granted after it was made. The cluster's leader makes it once every
// voter's build can apply it: a build before it would do neither, and the stores
// would drift apart.
type TrackGrants struct {
	Stamp
}

func (c TrackGrants) apply(t *txn) (any, error) {
	if !t.m.shape.Grants {
		sh := *t.m.shape
		sh.Grants = true
		t.m.shape = &sh
	}
	return nil, nil
}

// release ends the lease of ip, which must be the client's (mine, when not nil) and
// be one the release is of (released).
func (t *txn) release(ip netip.Addr, mine func(Lease) bool, released func(Lease) bool) (any, error) {
	l, ok := t.m.Lease(ip)
	switch {
	case !ok || (mine != nil && (!mine(l) || l.Quarantined())):
		return nil, &Error{Kind: ErrNotFound, Msg: "no lease of " + ip.String()}
	case !released(l):
		return nil, &Error{Kind: ErrNotFound, Msg: "the lease of " + ip.String() + " was granted again or renewed after the release"}
	case l.Released != 0:
		return nil, &Error{Kind: ErrConflict, Msg: fmt.Sprintf("the lease of %s is released already: the address waits until every node has applied the release, or until %s", ip, l.Expires.UTC().Format(time.RFC3339))}
	}
	t.endEarly(l)
	return l, nil
}

// DeclineLease quarantines IP, which MAC found in use on the network, until Until:
// no one gets it before. The address must be free or MAC's.
type DeclineLease struct {
	Stamp
	IP    netip.Addr `json:"ip"`
	MAC   site.MAC   `json:"mac"`
	Until time.Time  `json:"until"`
	// LeaseExpires, when set, is the expiry of the client's lease of IP when it
	// declined: a lease granted again since (a DECLINE kept through an election is
	// applied late) is not taken by it.
	LeaseExpires time.Time `json:"lease_expires,omitzero"`
	// LeaseGranted, when set, is the grant of that lease (Lease.Granted), which tells
	// it instead of its expiry: another node may have renewed it since. It is set only
	// once leases keep their grants, when every node's build reads it (Shape.Grants).
	LeaseGranted uint64 `json:"lease_granted,omitempty"`
}

func (c DeclineLease) apply(t *txn) (any, error) {
	return t.decline(c.At, c.IP, client{mac: c.MAC}, c.Until, c.LeaseExpires, c.LeaseGranted)
}

// DeclineLease6 is DeclineLease for a DHCPv6 client, known by its DUID and IAID
// (Client): a Decline of IP.
type DeclineLease6 struct {
	Stamp
	IP     netip.Addr `json:"ip"`
	Client string     `json:"client"`
	Until  time.Time  `json:"until"`
	// LeaseGranted, when set, is the grant of the client's lease of IP (Lease.Granted):
	// a lease granted again since is not taken by the decline.
	LeaseGranted uint64 `json:"lease_granted,omitempty"`
}

func (c DeclineLease6) apply(t *txn) (any, error) {
	if c.Client == "" || !c.IP.Is6() {
		return nil, invalid("client", "a DHCPv6 decline names its client (DUID and IAID) and an IPv6 address")
	}
	if _, ok := t.m.SubnetOf(c.IP); !ok {
		return nil, &Error{Kind: ErrConflict, Msg: c.IP.String() + " is in no subnet"}
	}
	return t.decline(c.At, c.IP, client{id: c.Client}, c.Until, time.Time{}, c.LeaseGranted)
}

// decline quarantines ip, which who found in use at now (see DeclineLease).
func (t *txn) decline(now time.Time, ip netip.Addr, who client, until, leaseExpires time.Time, leaseGranted uint64) (any, error) {
	if h, ok := t.m.HostAt(ip); ok {
		return nil, &Error{Kind: ErrConflict, Msg: fmt.Sprintf("the address is host %q's: a quarantine cannot take it", h.Name)}
	}
	l, ok := t.m.Lease(ip)
	if ok && !l.Ended(now) && (l.Declined || !who.holds(l)) {
		return nil, &Error{Kind: ErrConflict, Msg: "the address is not this client's"}
	}
	switch {
	case !ok:
	case leaseGranted != 0 && l.Granted != leaseGranted, leaseGranted == 0 && !leaseExpires.IsZero() && !l.Expires.Equal(leaseExpires):
		return nil, &Error{Kind: ErrConflict, Msg: "the client's lease of " + ip.String() + " was granted again after the decline"}
	}
	if ok && !l.Ended(now) && t.m.shape.DHCPServers > 1 && l.Expires.After(until) {
		until = l.Expires // a box cut off from the others may renew the lease until then (endEarly)
	}
	if old, ok := t.m.leaseOf(who); ok && old.IP == ip {
		t.deleteLease(ip)
	}
	quarantine := Lease{IP: ip, Expires: until, Declined: true}
	t.putLease(quarantine)
	return quarantine, nil
}

// ExpireLeases removes the leases and quarantines that have ended at At, at most
// maxExpire of them (the oldest first); its result is how many it removed.
type ExpireLeases struct {
	Stamp
}

const maxExpire = 4096

func (c ExpireLeases) apply(t *txn) (any, error) {
	n := 0
	for n < maxExpire {
		e, ok := t.ends.expiry.next(c.At.Unix())
		if !ok {
			break
		}
		// The index may hold an ending that a renewal or a release has passed.
		if l, ok := t.m.Lease(e.ip); ok && l.Expires.Unix() == e.at && l.Ended(c.At) {
			t.deleteLease(e.ip)
			n++
		}
	}
	return n, nil
}

// SetDHCPServers says how many boxes answer DHCP: the cluster's leader makes it when
// the site file's serving nodes are more or fewer than the model says, once every
// voter's build can apply it (a build before it would not hold the addresses of the
// leases ended early, and the stores would drift apart).
type SetDHCPServers struct {
	Stamp
	Servers int `json:"servers"`
}

func (c SetDHCPServers) apply(t *txn) (any, error) {
	if c.Servers < 0 {
		return nil, invalid("servers", "a count of boxes is not negative")
	}
	if c.Servers != t.m.shape.DHCPServers {
		sh := *t.m.shape
		sh.DHCPServers = c.Servers
		t.m.shape = &sh
	}
	return nil, nil
}

// SettleEnds gives back to the pool the addresses of leases released (Lease.Released)
// by commands at or before the log's index Through, at most maxExpire of them, the
// earliest first; its result is how many. The cluster's leader makes it once every
// box that answers DHCP has applied Through: none of them can still believe those
// leases held, so none renews one to its old client while another client is given
// its address.
type SettleEnds struct {
	Stamp
	Through uint64 `json:"through"`
}

func (c SettleEnds) apply(t *txn) (any, error) {
	n := 0
	for n < maxExpire {
		e, ok := t.ends.released.next(int64(c.Through))
		if !ok {
			break
		}
		if l, ok := t.m.Lease(e.ip); ok && l.Released == uint64(e.at) {
			t.deleteLease(e.ip)
			n++
		}
	}
	return n, nil
}

// endings is the writer's index of when leases end: by expiry (unix seconds), and the
// released ones by the log index of their release. Only the writer touches it, and it
// may hold more than the leases' endings (a lease renewed, or a batch that failed
// after adding one): ExpireLeases and SettleEnds check each against the model, so
// what they remove follows from the model alone.
type endings struct {
	expiry, released endHeap
}

// endHeap is a heap of (when, address).
type endHeap []ending

type ending struct {
	at int64
	ip netip.Addr
}

func (h endHeap) Len() int { return len(h) }
func (h endHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].ip.Less(h[j].ip)
}
func (h endHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)   { *h = append(*h, x.(ending)) }
func (h *endHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// next pops the earliest ending at or before at.
func (h *endHeap) next(at int64) (ending, bool) {
	if h.Len() == 0 || (*h)[0].at > at {
		return ending{}, false
	}
	return heap.Pop(h).(ending), true
}

func (e *endings) add(l Lease) {
	heap.Push(&e.expiry, ending{at: l.Expires.Unix(), ip: l.IP})
	if l.Released != 0 {
		heap.Push(&e.released, ending{at: int64(l.Released), ip: l.IP})
	}
}

// endingsOf indexes every lease of m.
func endingsOf(m *Model) *endings {
	e := &endings{expiry: make(endHeap, 0, m.leases.byIP.Len())}
	m.leases.byIP.Ascend(func(k keyed[netip.Addr]) bool {
		e.expiry = append(e.expiry, ending{at: k.lease.Expires.Unix(), ip: k.key})
		if r := k.lease.Released; r != 0 {
			e.released = append(e.released, ending{at: int64(r), ip: k.key})
		}
		return true
	})
	heap.Init(&e.expiry)
	heap.Init(&e.released)
	return e
}

// Leases returns every lease, by address.
func (m *IPAM) Leases() []Lease { return m.Model().Leases() }

// PinLease turns the lease of IP into a reservation: an API-owned host with the
// lease's address and MAC, named Name, or the lease's hostname when Name is empty.
// The lease stays, now the host's: its client keeps its address without a break.
type PinLease struct {
	Stamp
	IP   netip.Addr `json:"ip"`
	Name string     `json:"name,omitempty"`
}

func (c PinLease) apply(t *txn) (any, error) {
	l, ok := t.m.Lease(c.IP)
	switch {
	case !ok:
		return nil, notFound("the lease of " + c.IP.String())
	case l.Declined:
		return nil, &Error{Kind: ErrConflict, Msg: c.IP.String() + " is quarantined (a client declined it), not leased: there is no machine to reserve it for"}
	case l.Released != 0:
		return nil, &Error{Kind: ErrConflict, Msg: c.IP.String() + " was released by its client, not leased: reserve it by the client's MAC instead"}
	case l.IP.Is6():
		return nil, &Error{Kind: ErrConflict, Msg: c.IP.String() + " is a DHCPv6 lease: reserve it by giving a host the address as its ip6"}
	}
	h := site.Host{Name: c.Name, IP: l.IP, MAC: l.MAC, Owner: site.OwnerAPI}
	if h.Name == "" {
		h.Name = l.Hostname
	}
	if h.Name == "" {
		return nil, invalid("name", fmt.Sprintf("the lease of %s (%s) has no hostname: give the host a name", l.IP, l.MAC))
	}
	// The host is new: its name, MAC and address are checked as any new host's.
	old, exists := t.m.Host(h.Name)
	if err := t.mayPut("host", h.Name, true, exists, old.Owner); err != nil {
		return nil, err
	}
	if err := t.checkHost(h.Name, &h); err != nil {
		return nil, err
	}
	t.putHost(h)
	return h, nil
}

// PinLease makes the lease of ip a reservation (see the command PinLease).
func (m *IPAM) PinLease(ctx context.Context, ip netip.Addr, name string) (site.Host, error) {
	return result[site.Host](m.Apply(ctx, PinLease{Stamp: m.stampFor(ctx), IP: ip, Name: name}))
}

// ReleaseLease ends the lease of ip, whoever holds it.
func (m *IPAM) ReleaseLease(ctx context.Context, ip netip.Addr) error {
	_, err := m.Apply(ctx, ReleaseLease{Stamp: m.stampFor(ctx), IP: ip})
	return err
}
