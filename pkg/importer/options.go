package importer

import (
	"cmp"

	"github.com/infrad/infrad/pkg/site"
)

// The DHCP options a source gives every client, a network's or a host's, as the site
// file writes them.

// merged is o with the fields over sets laid over it.
func merged(o, over site.DHCPOptionsSpec) site.DHCPOptionsSpec {
	if len(over.DNS) > 0 {
		o.DNS = over.DNS
	}
	if len(over.NTP) > 0 {
		o.NTP = over.NTP
	}
	if len(over.Search) > 0 {
		o.Search = over.Search
	}
	o.MTU = cmp.Or(over.MTU, o.MTU)
	o.NextServer = cmp.Or(over.NextServer, o.NextServer)
	o.BootFile = cmp.Or(over.BootFile, o.BootFile)
	return o
}

// anyOptions reports whether s sets an option.
func anyOptions(s site.DHCPOptionsSpec) bool {
	return len(s.DNS)+len(s.NTP)+len(s.Search) > 0 || s.MTU != 0 || s.NextServer != "" || s.BootFile != ""
}
