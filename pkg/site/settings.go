package site

import (
	"net/netip"
)

// ZoneSettings are what the site file says of the zones' content.
type ZoneSettings struct {
	// TTL is that of every RR without a TTL of its own; 0: DefaultZoneTTL.
	TTL uint32 `json:"ttl,omitempty"`
	// NameServers are the addresses the zones' name servers answer on: a cluster's
	// serving nodes, or one box's dns.advertise. Each that is a host's address names
	// that host as a name server; the others are the addresses of the glue name
	// ns.<domain>, which infrad owns.
	NameServers []netip.Addr `json:"name_servers,omitempty"`
	// Signed says the zones are signed (dns.dnssec): turning it on or off changes
	// every answer, and so raises the serial.
	Signed bool `json:"signed,omitempty"`
	// Services are the names infrad hands out for itself (the CA's name, and the
	// ntp. and infrad. names of the domain that its NTS-KE and API certificates
	// carry), those in the site's zones. Each answers the name servers' addresses
	// unless the site gives it an address of its own (a host, or A, AAAA or CNAME
	// records); no DHCP client's name takes one.
	Services []Name `json:"services,omitempty"`
}

// DefaultZoneTTL is the TTL of a store whose settings no site file has given yet.
const DefaultZoneTTL = 300

// ChangeLimits bound the change log: entries older than Days, and the oldest past
// Entries, are trimmed as new ones come. Zero: the default.
type ChangeLimits struct {
	Days    int `json:"days,omitempty"`
	Entries int `json:"entries,omitempty"`
}

// The change log's default bounds: 90 days, and at most 100,000 entries (a busy
// DHCP pool's new clients each make one; a renewal makes none).
const (
	DefaultChangeDays    = 90
	DefaultChangeEntries = 100_000
)

// OrDefault is l with the default for each bound that is zero.
func (l ChangeLimits) OrDefault() ChangeLimits {
	if l.Days <= 0 {
		l.Days = DefaultChangeDays
	}
	if l.Entries <= 0 {
		l.Entries = DefaultChangeEntries
	}
	return l
}
