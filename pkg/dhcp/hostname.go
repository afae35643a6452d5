package dhcp

import (
	"strings"

	"github.com/infrad/infrad/pkg/site"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// clientName is the name the client gives itself: the first label of its FQDN
// (option 81, RFC 4702) or its host name (option 12).
func clientName(m *dhcpv4.DHCPv4) string {
	if fqdn := m.GetOneOption(dhcpv4.OptionFQDN); len(fqdn) > 3 {
		name := fqdn[3:]
		if fqdn[0]&0x04 != 0 { // E: canonical wire format
			if n := int(name[0]); n > 0 && n < len(name) {
				return string(name[1 : 1+n])
			}
			return ""
		}
		label, _, _ := strings.Cut(string(name), ".")
		return label
	}
	label, _, _ := strings.Cut(m.HostName(), ".")
	return label
}

// nameOptions tells the client the name DNS gives it, as it asked: its host name
// (option 12) when it asked for one (RFC 2132 §3.14), and, when it sent its FQDN
// (option 81), the server's answer (RFC 4702 §4): the name, with S set, since infrad
// itself publishes the A and PTR records (O too, when the client wanted to do the A
// itself), or N when it publishes no name for the client (another holds the name it
// asked for). The name is in the encoding the client used (E).
func nameOptions(req, resp *dhcpv4.DHCPv4, name string, domain site.Name) {
	if name != "" && req.IsOptionRequested(dhcpv4.OptionHostName) {
		resp.UpdateOption(dhcpv4.OptHostName(name))
	}
	fqdn := req.GetOneOption(dhcpv4.OptionFQDN)
	if len(fqdn) < 3 {
		return
	}
	const s, o, e, n = 0x01, 0x02, 0x04, 0x08
	flags := fqdn[0] & e
	var wire []byte
	if name == "" {
		flags |= n
	} else {
		flags |= s
		if fqdn[0]&s == 0 {
			flags |= o
		}
		full := name + "." + string(domain)
		if flags&e != 0 {
			wire = labels(full)
		} else {
			wire = []byte(strings.TrimSuffix(full, "."))
		}
	}
	// RCODE1 and RCODE2 are 255 from a server (RFC 4702 §2.2).
	resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionFQDN, append([]byte{flags, 255, 255}, wire...)))
}

// labels is name in DNS wire format: each label after its length, then the root.
func labels(name string) []byte {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(append(b, byte(len(l))), l...)
	}
	return append(b, 0)
}
