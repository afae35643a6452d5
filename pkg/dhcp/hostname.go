package dhcp

import (
	"strings"

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

// sanitizeHostname makes a client's name a DNS label: lower case; letters, digits and
// hyphens; no hyphen at either end; at most 63 characters. What cannot be saved is "".
func sanitizeHostname(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			b.WriteRune(c)
		case c == '_' || c == ' ':
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	return name
}
