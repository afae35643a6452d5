package dhcp

import (
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// proxyAnswer answers as a proxyDHCP server (dhcp.mode: proxy; PXE 2.1, §2.2.4):
// the site's own DHCP server gives the client its address, and infrad tells a network
// boot client whose machine boots from a profile where it boots from. A DISCOVER on
// port 67 gets an OFFER with no address; a REQUEST on port 4011 (the boot server
// discovery that PXE firmware and iPXE make once they have their address), or one on
// 67 that names infrad, gets an ACK the same. Each carries option 60 "PXEClient"
// (how firmware and iPXE know a proxy's offer), 54, 43's discovery control, infrad
// as next-server, and the client's machine identifier (97) echoed. Everything else, and every other client,
// is left to the site's server; nothing is committed.
func (s *Service) proxyAnswer(r *request, st *settings) (*dhcpv4.DHCPv4, *net.UDPAddr) {
	var t dhcpv4.MessageType
	switch typeOf(r.DHCPv4) {
	case dhcpv4.MessageTypeDiscover:
		if r.link.bootServer {
			return nil, nil
		}
		t = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		if id := r.ServerIdentifier(); !r.link.bootServer && !(id != nil && id.Equal(r.link.addr.AsSlice())) {
			return nil, nil // for the site's server
		}
		t = dhcpv4.MessageTypeAck
	default:
		return nil, nil
	}
	resp := newReply(r.DHCPv4, t, r.link.addr)
	infrad := st.infrad(r.link)
	if !s.netboot(r, resp, infrad) {
		return nil, nil
	}
	resp.ServerIPAddr = infrad.AsSlice()                       // iPXE takes a proxy's ACK only with next-server and a boot file
	if resp.Options.Get(dhcpv4.OptionClassIdentifier) == nil { // iPXE's answer, which carries none: a proxy's must
		resp.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient"))
		resp.UpdateOption(dhcpv4.Option{Code: dhcpv4.OptionVendorSpecificInformation, Value: pxeUseFile})
	}
	if uuid := r.Options.Get(dhcpv4.OptionClientMachineIdentifier); uuid != nil {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, uuid))
	}
	s.metrics.sent(t)
	return resp, destination(r.DHCPv4, t)
}
