package dns

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/infrad/infrad/pkg/config"
)

// corefile writes the Corefile that runs the site's DNS: one server block per listen
// port, each binding that port's addresses and chaining the infrad plugin (which
// answers our zones, updates and transfers, and sends only allowed clients on), cache
// and forward. id ties the blocks to the Service that owns them.
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
		if len(d.TSIGKeys) > 0 {
			// The keys reach CoreDNS's server from the plugin's setup, not through the
			// file: their digest makes a change of keys a change of the Corefile, and so
			// a restart of CoreDNS with them.
			fmt.Fprintf(&b, "\t# tsig keys %s\n", keysDigest(d.TSIGKeys))
		}
		fmt.Fprintf(&b, "\t%s %s\n", pluginName, id)
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

func keysDigest(keys []config.TSIGKey) string {
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s %s\n", k.Name, k.Secret) // what the server holds; the rest is read per message
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
