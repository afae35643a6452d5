package dhcp

import (
	"net"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"

	"github.com/infrad/infrad/pkg/ipam"
)

// reply builds an OFFER or ACK giving ip (none for an ACK to an INFORM) with the
// options of the subnet, overridden by the client's host, and says where it goes.
func (s *Service) reply(r *request, t dhcpv4.MessageType, ip netip.Addr) (*dhcpv4.DHCPv4, *net.UDPAddr) {
	st := s.settings.Load()
	infrad := st.dns // where clients reach infrad's DNS and NTP
	if !infrad.IsValid() {
		infrad = r.link.addr
	}
	opts := ipam.DHCPOptions{DNS: []netip.Addr{infrad}, NTP: []netip.Addr{infrad}, Search: []ipam.Name{r.model.Domain()}}
	opts = opts.Merge(r.sn.DHCP)
	if h, ok := r.model.HostWithMAC(r.mac); ok {
		opts = opts.Merge(h.DHCP)
	}
	resp := newReply(r.DHCPv4, t, r.link.addr)
	resp.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(r.sn.CIDR.Bits(), 32)))
	resp.UpdateOption(dhcpv4.OptBroadcastAddress(ipam.Broadcast(r.sn.CIDR).AsSlice()))
	resp.UpdateOption(dhcpv4.OptDNS(ips(opts.DNS)...))
	resp.UpdateOption(dhcpv4.OptNTPServers(ips(opts.NTP)...))
	resp.UpdateOption(dhcpv4.OptDomainName(strings.TrimSuffix(string(r.model.Domain()), ".")))
	resp.UpdateOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: names(opts.Search)}))
	if r.sn.Gateway.IsValid() {
		resp.UpdateOption(dhcpv4.OptRouter(r.sn.Gateway.AsSlice()))
	}
	if ip.IsValid() {
		lt := st.leaseTime
		if r.leaseFor > 0 {
			lt = r.leaseFor
		}
		resp.YourIPAddr = ip.AsSlice()
		resp.UpdateOption(dhcpv4.OptIPAddressLeaseTime(lt))
		resp.UpdateOption(dhcpv4.OptRenewTimeValue(lt / 2))
		resp.UpdateOption(dhcpv4.OptRebindingTimeValue(lt * 7 / 8))
	}
	if opts.MTU != 0 {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, []byte{byte(opts.MTU >> 8), byte(opts.MTU)}))
	}
	if opts.NextServer.IsValid() {
		resp.ServerIPAddr = opts.NextServer.AsSlice()
		resp.UpdateOption(dhcpv4.OptTFTPServerName(opts.NextServer.String()))
	}
	if opts.BootFile != "" {
		resp.UpdateOption(dhcpv4.OptBootFileName(opts.BootFile))
		resp.BootFileName = opts.BootFile // the legacy file field, which PXE ROMs read
	}
	s.metrics.sent(t)
	return resp, destination(r.DHCPv4, t)
}

// newReply starts a reply of type t to req from the server at id, as the library's
// NewReplyFromRequest does, without drawing a random transaction ID that the request's
// then replaces: the relay agent (RFC 3046) and client identifier (RFC 6842) options
// are copied.
func newReply(req *dhcpv4.DHCPv4, t dhcpv4.MessageType, id netip.Addr) *dhcpv4.DHCPv4 {
	resp := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		ClientHWAddr:  req.ClientHWAddr,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: req.GatewayIPAddr,
		Options:       dhcpv4.Options{},
	}
	if t == dhcpv4.MessageTypeAck && addr(req.ClientIPAddr).IsValid() {
		resp.ClientIPAddr = req.ClientIPAddr // a renewal or an INFORM
	}
	for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionRelayAgentInformation, dhcpv4.OptionClientIdentifier} {
		if v := req.GetOneOption(code); v != nil {
			resp.UpdateOption(dhcpv4.OptGeneric(code, v))
		}
	}
	resp.UpdateOption(dhcpv4.OptMessageType(t))
	resp.UpdateOption(dhcpv4.OptServerIdentifier(id.AsSlice()))
	return resp
}

// destination is where a reply to req goes (RFC 2131 §4.1): to the relay when there
// is one; a NAK to everyone; to a client with an address (renewing, or INFORM) at that
// address; to everyone otherwise, since a client without an address cannot take a
// unicast that no ARP entry leads to.
func destination(req *dhcpv4.DHCPv4, t dhcpv4.MessageType) *net.UDPAddr {
	switch {
	case addr(req.GatewayIPAddr).IsValid():
		return &net.UDPAddr{IP: req.GatewayIPAddr, Port: dhcpv4.ServerPort}
	case t == dhcpv4.MessageTypeNak:
		return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	case addr(req.ClientIPAddr).IsValid():
		return &net.UDPAddr{IP: req.ClientIPAddr, Port: dhcpv4.ClientPort}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}

func ips(as []netip.Addr) []net.IP {
	out := make([]net.IP, 0, len(as))
	for _, a := range as {
		if a.IsValid() {
			out = append(out, a.AsSlice())
		}
	}
	return out
}

func names(ns []ipam.Name) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = strings.TrimSuffix(string(n), ".")
	}
	return out
}
