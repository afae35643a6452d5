package dhcp

import (
	"context"
	"errors"
	"hash/fnv"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// declineQuarantine is how long an address a client declined stays out of the pool.
const declineQuarantine = 10 * time.Minute

// commitWait bounds how long a REQUEST waits for its lease's commit (and a RELEASE or
// DECLINE for its end's, which is then kept and applied again). A node just cut
// off from the others does not know it yet: its commit waits on a leader out of reach
// (up to the cluster's call timeout) while the client retransmits and gives up. Past
// commitWait it answers as a node without the quorum does, from the committed lease
// (the commit may still be made: a renewal answered from the model ends sooner than
// the committed one, which is safe).
const commitWait = 2 * time.Second

// skewMargin is how much sooner than its committed expiry a lease renewed without
// the quorum ends: the others free the address at the expiry by their own clocks,
// which may run this far ahead of this node's.
const skewMargin = 5 * time.Second

// request is one DHCP message with what the server worked out about it.
type request struct {
	*dhcpv4.DHCPv4
	link  *link       // the interface it came in on
	model *ipam.Model // IPAM as it was when the message came
	mac   site.MAC    //
	sn    site.Subnet // the subnet the client is on
	// leaseFor, when set, is the lease time the reply gives instead of the site's:
	// what is left of a lease renewed without the cluster's quorum.
	leaseFor time.Duration
	// name is the name the write path gave the client's lease ("" for none, as when
	// another holds the name it asked for); decided says the commit has given it. (A
	// reserved client's name is its host's: reply knows it.)
	name    string
	decided bool
}

// handle answers one message: the reply and where to send it, or nil to stay silent.
// Malformed messages, and messages for no subnet of ours, are dropped.
func (s *Service) handle(ctx context.Context, l *link, m *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, *net.UDPAddr) {
	if m.OpCode != dhcpv4.OpcodeBootRequest || m.HWType != iana.HWTypeEthernet || len(m.ClientHWAddr) != 6 {
		return nil, nil
	}
	r := &request{DHCPv4: m, link: l, model: s.ipam.Model(), mac: site.MAC(m.ClientHWAddr)}
	// Starvation: one client, or one relay, may not ask faster than the site allows.
	st, now := s.settings.Load(), s.now()
	if relay := addr(m.GatewayIPAddr); relay.IsValid() && !st.perRelay.Allow(relay, now) {
		s.metrics.limited.WithLabelValues("relay").Inc()
		return nil, nil
	}
	if !st.perMAC.Allow(r.mac, now) {
		s.metrics.limited.WithLabelValues("mac").Inc()
		return nil, nil
	}
	var ok bool
	if r.sn, ok = subnetFor(r.model, l, m); !ok {
		s.log.Debug("dhcp message for no subnet of ours", "mac", r.mac, "giaddr", m.GatewayIPAddr, "interface", l.name)
		return nil, nil
	}
	s.metrics.received(typeOf(m))
	if s.evicted != nil && s.evicted() != "" {
		return nil, nil // no longer a member of the cluster: the others answer
	}
	if !s.mine(m) {
		return nil, nil // another node of the cluster answers this client
	}
	if st.proxy {
		return s.proxyAnswer(r, st)
	}
	switch typeOf(m) {
	case dhcpv4.MessageTypeDiscover:
		return s.discover(r)
	case dhcpv4.MessageTypeRequest:
		return s.request(ctx, r)
	case dhcpv4.MessageTypeRelease:
		s.release(ctx, r)
	case dhcpv4.MessageTypeDecline:
		s.decline(ctx, r)
	case dhcpv4.MessageTypeInform:
		return s.reply(r, dhcpv4.MessageTypeAck, netip.Addr{})
	}
	return nil, nil
}

func (s *Service) discover(r *request) (*dhcpv4.DHCPv4, *net.UDPAddr) {
	if s.caughtUp != nil && !s.caughtUp() {
		// Started and still behind the cluster's log: an offer from this model could
		// name an address another node has given away since. The others answer.
		s.metrics.behind.Inc()
		return nil, nil
	}
	ip, reserved := reservation(r.model, r.sn, r.mac)
	if !reserved && !s.quorum() {
		// Cut off from the cluster: no new address, only the one the client holds.
		l, ok := r.model.LeaseOf(r.mac)
		left := leftWithoutQuorum(l, s.now())
		if !ok || left < time.Second || !r.sn.CIDR.Contains(l.IP) {
			s.metrics.noQuorum.Inc()
			return nil, nil
		}
		r.leaseFor = left
		return s.reply(r, dhcpv4.MessageTypeOffer, l.IP)
	}
	if !reserved {
		var ok bool
		mine, of := s.shareOf()
		if ip, ok = s.offers.Offer(r.model, r.sn, r.mac, addr(r.RequestedIPAddress()), mine, of); !ok {
			s.metrics.exhausted(r.sn.Name)
			s.warnExhausted(r.sn)
			return nil, nil
		}
	}
	return s.reply(r, dhcpv4.MessageTypeOffer, ip)
}

// request answers the REQUEST of a client selecting our offer, rebooting with the
// address it had, or renewing or rebinding its lease (RFC 2131 §4.3.2).
func (s *Service) request(ctx context.Context, r *request) (*dhcpv4.DHCPv4, *net.UDPAddr) {
	if id := addr(r.ServerIdentifier()); id.IsValid() && id != r.link.addr {
		return nil, nil // it chose another server's offer; ours lapses
	}
	ip := addr(r.ClientIPAddr)
	if !ip.IsValid() {
		ip = addr(r.RequestedIPAddress())
	}
	if !ip.IsValid() {
		return nil, nil
	}
	if !r.sn.CIDR.Contains(ip) {
		return s.nak(r, nakWrongNetwork, "the address is not on this network")
	}
	if s.offers.OfferedToOther(ip, r.mac) {
		if l, ok := r.model.Lease(ip); !ok || l.MAC != r.mac || l.Quarantined() || l.Ended(s.now()) {
			return s.nak(r, nakOffered, "the address is offered to another client")
		}
		// The client holds the address: this node offered it to another before
		// another node granted it (each offers from its own model), and the offer lapses.
		s.offers.Taken(ip)
	}
	now := s.now()
	ctx, cancel := context.WithTimeout(ctx, commitWait)
	defer cancel()
	c := ipam.CommitLease{Stamp: ipam.Stamp{At: now}, Subnet: r.sn.Name, MAC: r.mac, IP: ip,
		Hostname: site.SanitizeHostname(clientName(r.DHCPv4)), Expires: now.Add(s.settings.Load().leaseTime).Truncate(time.Second),
		Renewal: addr(r.ClientIPAddr) == ip}
	k := s.inFlight.start(c)
	res, err := s.ipam.Apply(ctx, c)
	var refused *ipam.Error
	if err == nil || errors.As(err, &refused) {
		s.inFlight.known(ip, k)
	}
	switch {
	case refused != nil:
		return s.nak(r, nakRefused, refused.Msg)
	case errors.Is(err, ipam.ErrNoQuorum), errors.Is(err, context.DeadlineExceeded):
		return s.withoutQuorum(r, ip)
	case err != nil:
		s.log.Error("lease not stored: no ACK", "ip", ip, "mac", r.mac, "err", err)
		return nil, nil
	}
	s.offers.Taken(ip)
	done := res.(ipam.Committed)
	if done.NameKeptBy != "" {
		s.log.Warn("lease hostname is taken: the first keeps it", "hostname", c.Hostname, "mac", r.mac, "kept_by", done.NameKeptBy)
	}
	r.name, r.decided = done.Hostname, true
	return s.reply(r, dhcpv4.MessageTypeAck, ip)
}

// withoutQuorum answers a REQUEST that the cluster could not commit, because this
// node is cut off from its quorum: a reservation is ACKed as ever; a client renewing
// a lease the model has gets what is left of it, ending skewMargin before its
// committed expiry; any other client gets no answer, so that a node with the quorum
// answers it. The others give the address to no one else before that expiry, unless
// this node has applied the lease's end (ipam.SettleEnds): the model read is the
// latest, not the one the REQUEST found, since an end applied meanwhile may be settled.
func (s *Service) withoutQuorum(r *request, ip netip.Addr) (*dhcpv4.DHCPv4, *net.UDPAddr) {
	s.metrics.noQuorum.Inc()
	if reserved, ok := reservation(r.model, r.sn, r.mac); ok && reserved == ip {
		return s.reply(r, dhcpv4.MessageTypeAck, ip)
	}
	from := s.ipam.Applied()
	l, ok := s.ipam.Model().Lease(ip)
	now := s.now()
	left := leftWithoutQuorum(l, now)
	if !ok || l.MAC != r.mac || l.Quarantined() || left < time.Second {
		return nil, nil
	}
	if s.promised != nil {
		if err := s.promised(from, now.Add(left)); err != nil {
			s.log.Error("renewal without the quorum not answered", "ip", ip, "mac", r.mac, "err", err)
			return nil, nil
		}
	}
	r.leaseFor = left
	return s.reply(r, dhcpv4.MessageTypeAck, ip)
}

// leftWithoutQuorum is what a node cut off from the quorum may give of l at now: the
// rest of the committed lease, skewMargin short, in whole seconds.
func leftWithoutQuorum(l ipam.Lease, now time.Time) time.Duration {
	return (l.Expires.Sub(now) - skewMargin).Truncate(time.Second)
}

// mine says whether this node answers m's client. The nodes of a cluster share the
// new clients by a hash of their identifier (option 61, else the hardware address),
// as RFC 3074's load balancing does: each node is given the buckets whose number,
// modulo how many serving nodes are up, is its place among them. The hash chooses only
// who answers a client without a lease: a client that has one is answered wherever
// its message arrives, so that a change of the live nodes (one dies, restarts, is cut
// off) drops none. A REQUEST naming a server (a client taking up an offer) is for that
// server, which checks it itself; a REQUEST from a client with its address (renewing,
// unicast to the node that granted it, or rebinding, broadcast) is answered from the
// committed lease, by any node that hears it; a RELEASE or DECLINE is sent to a server
// by its identifier.
func (s *Service) mine(m *dhcpv4.DHCPv4) bool {
	mine, of := s.shareOf()
	if of <= 1 {
		return true
	}
	switch typeOf(m) {
	case dhcpv4.MessageTypeRequest:
		if m.ServerIdentifier() != nil || addr(m.ClientIPAddr).IsValid() {
			return true
		}
	case dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline:
		return true
	}
	id := m.Options.Get(dhcpv4.OptionClientIdentifier)
	if len(id) == 0 {
		id = m.ClientHWAddr
	}
	h := fnv.New32a()
	h.Write(id)
	return int(h.Sum32()%256)%of == mine
}

func (s *Service) shareOf() (mine, of int) {
	if s.share == nil {
		return 0, 1
	}
	return s.share()
}

func (s *Service) quorum() bool { return s.hasQuorum == nil || s.hasQuorum() }

// The reasons a REQUEST is NAKed, as infrad_dhcp_naks_total counts them.
const (
	nakWrongNetwork = "wrong_network"      // the address is not on the client's subnet
	nakOffered      = "offered_to_another" // the address is another client's offer
	nakRefused      = "refused"            // the write path refused the lease (why is in the message)
)

// nak refuses r's REQUEST, saying why in the message (RFC 2131 §4.3.2). A relayed NAK
// has the broadcast bit set, so that the relay broadcasts it to the client, which has
// no address to be sent one.
func (s *Service) nak(r *request, reason, why string) (*dhcpv4.DHCPv4, *net.UDPAddr) {
	resp := newReply(r.DHCPv4, dhcpv4.MessageTypeNak, r.link.addr)
	resp.UpdateOption(dhcpv4.OptMessage(why))
	if addr(r.GatewayIPAddr).IsValid() {
		resp.SetBroadcast()
	}
	s.log.Debug("dhcp nak", "reason", reason, "why", why, "mac", r.mac, "ciaddr", r.ClientIPAddr,
		"requested", r.RequestedIPAddress(), "giaddr", r.GatewayIPAddr, "subnet", r.sn.Name)
	s.metrics.sent(dhcpv4.MessageTypeNak)
	s.metrics.nak(reason)
	return resp, destination(r.DHCPv4, dhcpv4.MessageTypeNak)
}

// release ends the lease r's client releases: the lease of the grant the latest model
// has, however often renewed since, and one a commit of the client's still in flight
// may yet make (read first, so that one applied between the two reads is in the
// model); a lease granted before grants were kept is told by the model's expiry.
func (s *Service) release(ctx context.Context, r *request) {
	if id := addr(r.ServerIdentifier()); id.IsValid() && id != r.link.addr {
		return
	}
	now, ip := s.now(), addr(r.ClientIPAddr)
	client := ipam.ReleaseClientLease{Stamp: ipam.Stamp{At: now}, IP: ip, MAC: r.mac, Expires: s.inFlight.of(ip, r.mac, now)}
	inFlight := len(client.Expires) > 0
	release := ipam.ReleaseLease{Stamp: client.Stamp, IP: ip, MAC: r.mac}
	if l, ok := s.ipam.Model().Lease(ip); ok && l.MAC == r.mac {
		release.Expires = l.Expires // the lease released, and not one granted after
		if client.Granted = l.Granted; l.Granted == 0 {
			client.Expires = append(client.Expires, l.Expires)
		}
	}
	var cmd ipam.Command = release
	if client.Granted != 0 || inFlight {
		cmd = client
	}
	ctx, cancel := context.WithTimeout(ctx, commitWait)
	defer cancel()
	_, err := s.ipam.Apply(ctx, cmd)
	if errors.Is(err, ipam.ErrNotEveryBuild) {
		cmd = release // a node's build is older: the release ends the committed lease alone
		_, err = s.ipam.Apply(ctx, cmd)
	}
	switch {
	case unsure(err):
		s.holdEnd(cmd)
	case err != nil && !errors.Is(err, ipam.ErrNotFound):
		s.log.Error("release not stored", "ip", ip, "mac", r.mac, "err", err)
	}
}

// unsure says the cluster could not say whether it made an end (a RELEASE, a
// DECLINE): it has no quorum, or the wait for the commit ran out (the leader out of
// reach before this node knew it). Kept and applied again, an end already made is
// refused, harmlessly; one dropped would leave its lease held to its expiry.
func unsure(err error) bool {
	return errors.Is(err, ipam.ErrNoQuorum) || errors.Is(err, context.DeadlineExceeded)
}

// holdEnd keeps a RELEASE or DECLINE the cluster could not take now, to apply once
// it can (heldEnds).
func (s *Service) holdEnd(cmd ipam.Command) {
	if s.ends.hold(cmd) {
		s.metrics.endsDropped.Inc()
	}
	s.log.Info("lease end kept until the cluster takes writes again", "command", ipam.CommandType(cmd), "waiting", s.ends.len())
}

func (s *Service) decline(ctx context.Context, r *request) {
	ip := addr(r.RequestedIPAddress())
	if id := addr(r.ServerIdentifier()); !ip.IsValid() || (id.IsValid() && id != r.link.addr) || !r.sn.CIDR.Contains(ip) {
		return
	}
	if s.offers.OfferedToOther(ip, r.mac) {
		return
	}
	now := s.now()
	cmd := ipam.DeclineLease{Stamp: ipam.Stamp{At: now}, IP: ip, MAC: r.mac, Until: now.Add(declineQuarantine).Truncate(time.Second)}
	if l, ok := s.ipam.Model().Lease(ip); ok && l.MAC == r.mac {
		cmd.LeaseExpires, cmd.LeaseGranted = l.Expires, l.Granted // the lease declined, and not one granted after
	}
	ctx, cancel := context.WithTimeout(ctx, commitWait)
	defer cancel()
	_, err := s.ipam.Apply(ctx, cmd)
	switch {
	case errors.Is(err, ipam.ErrConflict):
		return // not this client's to decline
	case unsure(err):
		s.holdEnd(cmd)
		return
	case err != nil:
		s.log.Error("decline not stored", "ip", ip, "err", err)
		return
	}
	s.offers.Taken(ip)
	s.offers.Forget(r.mac)
	s.log.Warn("client declined an address: it is in use on the network; quarantined", "ip", ip, "mac", r.mac, "for", declineQuarantine)
}

// addr converts a net.IP from the library, where nil and 0.0.0.0 mean none.
func addr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || a.Unmap().IsUnspecified() {
		return netip.Addr{}
	}
	return a.Unmap()
}
