// Package ipam owns the site's state and its one write path: subnets with their
// ranges, hosts, DNS records, DHCP leases (and the CA's tables, which it only stores),
// the commands that change them (each checked and written in one bbolt transaction by
// one writer), and the immutable model published after each commit, which DNS, DHCP
// and the API read. The objects and their rules are pkg/site's.
//
// The same rules apply whether an object comes from the site file or from the API:
// both are checked with site.Set.Problems, the API's changes on their neighbourhood.
package ipam

import (
	"net/netip"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// Lease is an address the DHCP service has handed out; IPAM never gives it to
// anything else while the lease is held. A quarantined lease holds the address for no
// client until it expires: a declined lease is an address a client found in use; a
// released one is a lease ended early (a RELEASE, an admin's delete, its client moving
// to another address) on a site that more than one box serves, whose address waits
// until no box can still believe it leased (SettleEnds).
type Lease struct {
	IP       netip.Addr `json:"ip"`
	MAC      site.MAC   `json:"mac,omitzero"`
	Hostname string     `json:"hostname,omitempty"` // sanitised; its A and PTR are in DNS
	Expires  time.Time  `json:"expires"`
	Declined bool       `json:"declined,omitempty"`
	// Released is the log index of the command that ended the lease early (0: it did
	// not); MAC is still the client that held it, which may take it again.
	Released uint64 `json:"released,omitempty"`
	// Granted is the log index of the command that granted the lease to its client;
	// a renewal keeps it, so it tells the lease a RELEASE ends from one granted after
	// the RELEASE (ReleaseClientLease). 0: granted before the site's boxes all kept it
	// (Shape.Grants).
	Granted uint64 `json:"granted,omitempty"`
}

// Quarantined reports whether l holds its address for no client: declined, or
// released and waiting.
func (l Lease) Quarantined() bool { return l.Declined || l.Released != 0 }
