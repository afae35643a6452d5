package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/infrad/infrad/pkg/config"
)

// corefile writes the Corefile that runs the site's DNS: one server block per listen
// port, each binding that port's addresses and chaining tsig, transfer, the infrad
// plugin (which answers our zones, and sends only allowed clients on), cache and
// forward. id ties the blocks to the Service that owns them.
func corefile(id string, d config.DNS) string {
	var ports []uint16
	addrs := map[uint16][]string{}
	for _, l := range d.Listen {
		if !slices.Contains(ports, l.Port()) {
			ports = append(ports, l.Port())
		}
		addrs[l.Port()] = append(addrs[l.Port()], l.Addr().String())
	}
	var b strings.Builder
	for _, port := range ports {
		fmt.Fprintf(&b, ".:%d {\n", port)
		fmt.Fprintf(&b, "\tbind %s\n", strings.Join(addrs[port], " "))
		b.WriteString("\ttsig {\n")
		for _, k := range d.TSIGKeys {
			fmt.Fprintf(&b, "\t\tsecret %s %s\n", k.Name, k.Secret)
		}
		b.WriteString("\t\trequire_opcode UPDATE\n\t}\n")
		// Who may transfer is transferACL's to say; the transfer plugin notifies the
		// secondaries.
		fmt.Fprintf(&b, "\ttransfer {\n\t\tto %s\n\t}\n", strings.TrimSpace("* "+joinAddrs(d.Secondaries)))
		for _, p := range []string{guardName, transferACLName, pluginName} {
			fmt.Fprintf(&b, "\t%s %s\n", p, id)
		}
		if len(d.Forwarders) > 0 {
			fmt.Fprintf(&b, "\tcache\n\tforward . %s\n", joinAddrs(d.Forwarders))
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func joinAddrs(aps []netip.AddrPort) string {
	out := make([]string, len(aps))
	for i, ap := range aps {
		out[i] = ap.String()
	}
	return strings.Join(out, " ")
}
