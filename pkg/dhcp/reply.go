package dhcp

import (
	"encoding/binary"
	"maps"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// reply builds an OFFER or ACK giving ip (none for an ACK to an INFORM) with the
// options of the subnet, overridden by the client's host, and says where it goes.
func (s *Service) reply(r *request, t dhcpv4.MessageType, ip netip.Addr) (*dhcpv4.DHCPv4, *net.UDPAddr) {
	st := s.settings.Load()
	infrad := st.infrad(r.link)
	var sub *subnetOptions
	h, reserved := r.model.HostWithMAC(r.mac)
	name, decided := r.name, r.decided
	if reserved && r.sn.CIDR.Contains(h.IP) {
		name, decided = h.Name, true // a reserved client is known by its host's name alone
	}
	if reserved && h.DHCP != nil {
		sub = newSubnetOptions(r.model, r.sn, infrad, h.DHCP) // the host's own options: not shared
	} else {
		sub = s.subnetOptions(r.model, r.sn, st, infrad)
	}
	opts := sub.opts
	resp := newReply(r.DHCPv4, t, r.link.addr)
	for code, v := range sub.encoded {
		resp.Options[code] = v
	}
	if ip.IsValid() {
		lt := st.leaseTime
		if r.leaseFor > 0 {
			lt = r.leaseFor
		}
		resp.YourIPAddr = ip.AsSlice()
		setLeaseTimes(resp.Options, lt)
	}
	if opts.NextServer.IsValid() {
		resp.ServerIPAddr = opts.NextServer.AsSlice()
	}
	if opts.BootFile != "" {
		resp.BootFileName = opts.BootFile // the legacy file field, which PXE ROMs read
	}
	if decided && ip.IsValid() {
		nameOptions(r.DHCPv4, resp, name, r.model.Domain())
	}
	s.netboot(r, resp, infrad)
	s.metrics.sent(t)
	return resp, destination(r.DHCPv4, t)
}

// infrad is where the clients on l reach this box (its DNS, NTP and boot endpoint):
// dns.advertise, else l's address.
func (st *settings) infrad(l *link) netip.Addr {
	if st.dns.IsValid() {
		return st.dns
	}
	return l.addr
}

// setLeaseTimes sets the lease's time (51), its renewal (58, T1: half of it) and its
// rebinding (59, T2: seven eighths) in o, in seconds, as dhcpv4.OptIPAddressLeaseTime
// and its siblings encode them, in one allocation.
func setLeaseTimes(o dhcpv4.Options, lt time.Duration) {
	v := make([]byte, 12)
	for i, d := range [3]time.Duration{lt, lt / 2, lt * 7 / 8} {
		binary.BigEndian.PutUint32(v[4*i:], uint32(d/time.Second))
	}
	o[dhcpv4.OptionIPAddressLeaseTime.Code()] = v[0:4:4]
	o[dhcpv4.OptionRenewTimeValue.Code()] = v[4:8:8]
	o[dhcpv4.OptionRebindingTimeValue.Code()] = v[8:12:12]
}

// subnetOptions are the options every reply on a subnet carries, merged (infrad's
// own, the subnet's, a host's) and encoded once: building them for each reply was a
// twentieth of a DHCP exchange's CPU. Shared between replies, and never changed.
type subnetOptions struct {
	opts    site.DHCPOptions
	encoded dhcpv4.Options
}

func newSubnetOptions(m *ipam.Model, sn site.Subnet, infrad netip.Addr, host *site.DHCPOptions) *subnetOptions {
	opts := site.DHCPOptions{DNS: []netip.Addr{infrad}, NTP: []netip.Addr{infrad}, Search: []site.Name{m.Domain()}}
	opts = opts.Merge(sn.DHCP).Merge(host)
	o := dhcpv4.Options{}
	o.Update(dhcpv4.OptSubnetMask(net.CIDRMask(sn.CIDR.Bits(), 32)))
	o.Update(dhcpv4.OptBroadcastAddress(site.Broadcast(sn.CIDR).AsSlice()))
	o.Update(dhcpv4.OptDNS(ips(opts.DNS)...))
	o.Update(dhcpv4.OptNTPServers(ips(opts.NTP)...))
	o.Update(dhcpv4.OptDomainName(strings.TrimSuffix(string(m.Domain()), ".")))
	o.Update(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: names(opts.Search)}))
	if sn.Gateway.IsValid() {
		o.Update(dhcpv4.OptRouter(sn.Gateway.AsSlice()))
	}
	if opts.MTU != 0 {
		o.Update(dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, []byte{byte(opts.MTU >> 8), byte(opts.MTU)}))
	}
	if opts.NextServer.IsValid() {
		o.Update(dhcpv4.OptTFTPServerName(opts.NextServer.String()))
	}
	if opts.BootFile != "" {
		o.Update(dhcpv4.OptBootFileName(opts.BootFile))
	}
	return &subnetOptions{opts: opts, encoded: o}
}

// optionCache holds each subnet's options, by subnet and by the address infrad gives
// its clients there, for one shape of the site (its subnets and domain) and one set of
// settings: a change of either starts a new cache.
type optionCache struct {
	shape    *ipam.Shape
	settings *settings
	subnets  map[optionKey]*subnetOptions
}

type optionKey struct {
	subnet string
	infrad netip.Addr
}

// subnetOptions returns sn's options from the cache, making them on a miss.
func (s *Service) subnetOptions(m *ipam.Model, sn site.Subnet, st *settings, infrad netip.Addr) *subnetOptions {
	key := optionKey{sn.Name, infrad}
	c := s.options.Load()
	if c != nil && c.shape == m.Shape() && c.settings == st {
		if o, ok := c.subnets[key]; ok {
			return o
		}
	} else {
		c = &optionCache{shape: m.Shape(), settings: st}
	}
	o := newSubnetOptions(m, sn, infrad, nil)
	next := &optionCache{shape: c.shape, settings: c.settings, subnets: maps.Clone(c.subnets)}
	if next.subnets == nil {
		next.subnets = map[optionKey]*subnetOptions{}
	}
	next.subnets[key] = o
	s.options.Store(next)
	return o
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

func names(ns []site.Name) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = strings.TrimSuffix(string(n), ".")
	}
	return out
}
