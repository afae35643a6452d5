package dhcp

import (
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/infrad/infrad/pkg/ipam"
)

// declineQuarantine is how long an address a client declined stays out of the pool.
const declineQuarantine = 10 * time.Minute

// request is one DHCP message with what the server worked out about it.
type request struct {
	*dhcpv4.DHCPv4
	link *link       // the interface it came in on
	view *view       // IPAM as it was when the message came
	mac  ipam.MAC    //
	sn   ipam.Subnet // the subnet the client is on
}

// handle answers one message: the reply and where to send it, or nil to stay silent.
// Malformed messages, and messages for no subnet of ours, are dropped.
func (s *Service) handle(l *link, m *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, *net.UDPAddr) {
	if m.OpCode != dhcpv4.OpcodeBootRequest || m.HWType != iana.HWTypeEthernet || len(m.ClientHWAddr) != 6 {
		return nil, nil
	}
	r := &request{DHCPv4: m, link: l, view: s.view.Load(), mac: ipam.MAC(m.ClientHWAddr)}
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
	if r.sn, ok = r.view.subnetFor(l, m); !ok {
		s.log.Debug("dhcp message for no subnet of ours", "mac", r.mac, "giaddr", m.GatewayIPAddr, "interface", l.name)
		return nil, nil
	}
	s.metrics.received(m.MessageType())
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		return s.discover(r)
	case dhcpv4.MessageTypeRequest:
		return s.request(r)
	case dhcpv4.MessageTypeRelease:
		s.release(r)
	case dhcpv4.MessageTypeDecline:
		s.decline(r)
	case dhcpv4.MessageTypeInform:
		return s.reply(r, dhcpv4.MessageTypeAck, netip.Addr{})
	}
	return nil, nil
}

func (s *Service) discover(r *request) (*dhcpv4.DHCPv4, *net.UDPAddr) {
	ip, reserved := r.view.reservation(r.sn, r.mac)
	if !reserved {
		var ok bool
		if ip, ok = s.leases.Offer(r.sn, r.mac, addr(r.RequestedIPAddress())); !ok {
			s.metrics.exhausted(r.sn.Name)
			s.warnExhausted(r.sn)
			return nil, nil
		}
	}
	return s.reply(r, dhcpv4.MessageTypeOffer, ip)
}

// request answers the REQUEST of a client selecting our offer, rebooting with the
// address it had, or renewing or rebinding its lease (RFC 2131 §4.3.2).
func (s *Service) request(r *request) (*dhcpv4.DHCPv4, *net.UDPAddr) {
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
		return s.nak(r, "the address is not on this network")
	}
	if reserved, ok := r.view.reservation(r.sn, r.mac); ok {
		if ip != reserved {
			return s.nak(r, "this client's address is "+reserved.String())
		}
	} else if !s.leases.Grantable(r.sn, r.mac, ip) {
		return s.nak(r, "the address is not this client's")
	}
	if _, err := s.leases.Commit(r.mac, ip, s.hostname(r), s.settings.Load().leaseTime); err != nil {
		s.log.Error("lease not stored: no ACK", "ip", ip, "mac", r.mac, "err", err)
		return nil, nil
	}
	return s.reply(r, dhcpv4.MessageTypeAck, ip)
}

func (s *Service) nak(r *request, why string) (*dhcpv4.DHCPv4, *net.UDPAddr) {
	resp := newReply(r.DHCPv4, dhcpv4.MessageTypeNak, r.link.addr)
	resp.UpdateOption(dhcpv4.OptMessage(why))
	s.metrics.sent(dhcpv4.MessageTypeNak)
	return resp, destination(r.DHCPv4, dhcpv4.MessageTypeNak)
}

func (s *Service) release(r *request) {
	if id := addr(r.ServerIdentifier()); id.IsValid() && id != r.link.addr {
		return
	}
	if _, err := s.leases.Release(r.mac, addr(r.ClientIPAddr)); err != nil {
		s.log.Error("release not stored", "ip", r.ClientIPAddr, "mac", r.mac, "err", err)
	}
}

func (s *Service) decline(r *request) {
	ip := addr(r.RequestedIPAddress())
	if id := addr(r.ServerIdentifier()); !ip.IsValid() || (id.IsValid() && id != r.link.addr) {
		return
	}
	s.log.Warn("client declined an address: it is in use on the network; quarantined", "ip", ip, "mac", r.mac, "for", declineQuarantine)
	if err := s.leases.Decline(r.mac, ip, declineQuarantine); err != nil {
		s.log.Error("decline not stored", "ip", ip, "err", err)
	}
}

// hostname is the client's name for DNS: its option 81 or 12, sanitised, unless a
// host of the site or another client's lease has that name.
func (s *Service) hostname(r *request) string {
	name := sanitizeHostname(clientName(r.DHCPv4))
	if name == "" {
		return ""
	}
	if h, ok := r.view.hostNames[name]; ok {
		if h.MAC != r.mac {
			s.log.Warn("lease hostname is a host's name: the host keeps it", "hostname", name, "mac", r.mac, "host", h.Name)
		}
		return ""
	}
	if s.leases.HostnameTaken(name, r.mac) {
		s.log.Warn("lease hostname is another client's: the first keeps it", "hostname", name, "mac", r.mac)
		return ""
	}
	return name
}

// addr converts a net.IP from the library, where nil and 0.0.0.0 mean none.
func addr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || a.Unmap().IsUnspecified() {
		return netip.Addr{}
	}
	return a.Unmap()
}
