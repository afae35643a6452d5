package dhcp6

import (
	"context"
	"encoding/hex"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/insomniacslk/dhcp/rfc1035label"

	"github.com/infrad/infrad/pkg/site"
)

// exchange is one client message being answered, and what its answer is made from.
type exchange struct {
	sn   site.Subnet
	m    *dhcpv6.Message
	duid string   // the client's DUID, in hex
	mac  site.MAC // from its DUID, its link-local address or its relay; zero: unknown
	name string   // the name it gave (option 39's first label), sanitised; "": none
	// named is the name DNS gives the client's address: its lease's, or its host's;
	// "": none. The reply tells it (option 39).
	named string
}

// reply is the answer to m from the client at from (its MAC mac when a relay said
// it; zero: learnt from m), of subnet sn, where infrad's addresses are own and its
// identifier duid, and what the answer gives (address, options or none); nil: none
// (a message for another server, one without the identifiers RFC 8415 §16 requires,
// or one a server does not answer).
func (s *Service) reply(ctx context.Context, sn site.Subnet, own []netip.Addr, duid dhcpv6.DUID, from netip.Addr, mac site.MAC, m *dhcpv6.Message) (*dhcpv6.Message, string) {
	sid := m.Options.ServerID()
	cid := m.GetOneOption(dhcpv6.OptionClientID)
	typ := m.Type()
	switch typ {
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		if sid == nil || !sid.Equal(duid) || cid == nil {
			return nil, "" // another server's, or no client to answer
		}
	case dhcpv6.MessageTypeSolicit, dhcpv6.MessageTypeRebind, dhcpv6.MessageTypeConfirm:
		if sid != nil || cid == nil {
			return nil, ""
		}
	case dhcpv6.MessageTypeInformationRequest:
		if sid != nil && !sid.Equal(duid) {
			return nil, ""
		}
	default:
		return nil, ""
	}
	rapid := typ == dhcpv6.MessageTypeSolicit && m.GetOneOption(dhcpv6.OptionRapidCommit) != nil && sn.DHCP6 == site.DHCP6Stateful
	reply := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeReply, TransactionID: m.TransactionID}
	if typ == dhcpv6.MessageTypeSolicit && !rapid {
		reply.MessageType = dhcpv6.MessageTypeAdvertise
	}
	if cid != nil {
		reply.AddOption(cid)
	}
	dhcpv6.WithServerID(duid)(reply)
	if rapid {
		dhcpv6.WithRapidCommit(reply)
	}
	for _, mod := range s.options(own) {
		mod(reply)
	}
	x := exchange{sn: sn, m: m, mac: mac}
	if cid != nil {
		x.duid = hex.EncodeToString(cid.ToBytes())
	}
	if x.mac.IsZero() {
		x.mac = macOf(m, from)
	}
	if fqdn := m.Options.FQDN(); fqdn != nil && fqdn.DomainName != nil && len(fqdn.DomainName.Labels) > 0 {
		label, _, _ := strings.Cut(fqdn.DomainName.Labels[0], ".") // some clients put a dotted name in one label
		x.name = site.SanitizeHostname(label)
	}
	gave := "options"
	if typ != dhcpv6.MessageTypeRelease && typ != dhcpv6.MessageTypeDecline && len(own) > 0 {
		if url, httpClient := s.netboot(&x, own[0]); url != "" {
			reply.AddOption(dhcpv6.OptBootFileURL(url))
			if httpClient {
				reply.AddOption(httpClientClass)
			}
		}
	}
	switch typ {
	case dhcpv6.MessageTypeSolicit, dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind:
		if sn.DHCP6 != site.DHCP6Stateful || len(m.Options.IANA())+len(m.Options.IAPD()) == 0 {
			break
		}
		how := soliciting
		switch {
		case typ == dhcpv6.MessageTypeRequest || rapid:
			how = requesting
		case typ == dhcpv6.MessageTypeRenew:
			how = renewing
		case typ == dhcpv6.MessageTypeRebind:
			how = rebinding
		}
		gave = "none"
		var ias []ia
		for _, o := range m.Options.IANA() {
			ias = append(ias, naOf(o))
		}
		if sn.Delegate != nil {
			for _, o := range m.Options.IAPD() {
				ias = append(ias, pdOf(o, sn))
			}
		}
		for _, req := range ias {
			out, ok, answer := s.lease(ctx, &x, req, how)
			if !answer {
				return nil, "" // this node cannot say: another, or this one later, answers
			}
			reply.AddOption(out)
			if ok && req.pd != 0 && gave == "none" {
				gave = "prefix"
			} else if ok && req.pd == 0 {
				gave = "address"
			}
		}
		if fqdn := m.Options.FQDN(); fqdn != nil && how != soliciting {
			reply.AddOption(s.fqdn(fqdn, x.named))
		}
	case dhcpv6.MessageTypeConfirm:
		reply.AddOption(s.confirm(x))
	case dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		if !s.end(ctx, x, typ == dhcpv6.MessageTypeDecline) {
			return nil, "" // the cluster could not take it now: the client sends it again
		}
		reply.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess})
		gave = "none"
	}
	return reply, gave
}

// fqdn is the answer to the client's FQDN option asked (RFC 4704 §5): the name DNS
// gives its address, with S set, since infrad itself publishes its AAAA and PTR (O
// too, when the client wanted to publish the AAAA itself), or N when DNS gives it
// none (another holds the name it asked for).
func (s *Service) fqdn(asked *dhcpv6.OptFQDN, named string) *dhcpv6.OptFQDN {
	const fs, fo, fn = 0x01, 0x02, 0x04
	if named == "" {
		return &dhcpv6.OptFQDN{Flags: fn, DomainName: &rfc1035label.Labels{}}
	}
	flags := uint8(fs)
	if asked.Flags&fs == 0 {
		flags |= fo
	}
	full := named + "." + strings.TrimSuffix(string(s.site.Load().Domain), ".")
	return &dhcpv6.OptFQDN{Flags: flags, DomainName: &rfc1035label.Labels{Labels: []string{full}}}
}

// confirm answers a Confirm (RFC 8415 §18.3.3): Success when every address the
// client gives is on the link, else NotOnLink.
func (s *Service) confirm(x exchange) *dhcpv6.OptStatusCode {
	for _, ia := range x.m.Options.IANA() {
		for _, a := range ia.Options.Addresses() {
			if ip, ok := netip.AddrFromSlice(a.IPv6Addr); !ok || !x.sn.CIDR.Contains(ip.Unmap()) {
				return &dhcpv6.OptStatusCode{StatusCode: iana.StatusNotOnLink, StatusMessage: "not an address of subnet " + x.sn.Name}
			}
		}
	}
	return &dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess}
}

// macOf is the client's MAC: from its DUID-LL or DUID-LLT, else from the EUI-64 of its
// link-local address; zero when neither says it.
func macOf(m *dhcpv6.Message, from netip.Addr) site.MAC {
	var mac site.MAC
	switch d := m.Options.ClientID().(type) {
	case *dhcpv6.DUIDLL:
		if len(d.LinkLayerAddr) == 6 {
			copy(mac[:], d.LinkLayerAddr)
			return mac
		}
	case *dhcpv6.DUIDLLT:
		if len(d.LinkLayerAddr) == 6 {
			copy(mac[:], d.LinkLayerAddr)
			return mac
		}
	}
	if b := from.As16(); from.IsLinkLocalUnicast() && b[11] == 0xff && b[12] == 0xfe {
		return site.MAC{b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]}
	}
	return mac
}
