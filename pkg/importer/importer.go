// Package importer translates what another tool serves — dnsmasq's configuration,
// ISC dhcpd's and its lease file (or Kea's), Pi-hole's, a BIND zone or a transfer of
// one, NetBox's prefixes and addresses — into a site's objects as people write them
// (site specs), each with the source line it came from. What it cannot translate it
// names with its line, never drops. It changes nothing: `infrad import` shows the
// result as a plan, writes it into a site file or applies it through the API.
package importer

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// Kinds names each source Read takes, with the files it is given.
var Kinds = map[string]string{
	"dnsmasq": "dnsmasq.conf (dhcp-range, dhcp-host, dhcp-option, address, host-record, cname, srv-host, txt-record, mx-host, ptr-record, domain, server; the hosts files it names), /etc/ethers, dnsmasq.leases (live leases are kept)",
	"dhcpd":   "ISC dhcpd.conf (subnets, ranges, host blocks, options, shared networks) and dhcpd.leases or a Kea lease file (active leases are kept)",
	"kea":     "ISC Kea's kea-dhcp4.conf and kea-dhcp6.conf (subnets, pools, prefix delegation, reservations, options, shared networks) and its lease file kea-leases4.csv (live leases are kept)",
	"pihole":  "Pi-hole v5 (04-pihole-static-dhcp.conf, custom.list, 05-pihole-custom-cname.conf) or v6 (pihole.toml)",
	"zone":    "a BIND zone file, or axfr://SERVER[:PORT]/ZONE transferred from a running server (with --tsig NAME:ALGORITHM:SECRET)",
	"netbox":  "NetBox's REST API (https://netbox/ with --token) or its CSV exports of prefixes, IP ranges and IP addresses",
}

// Site is what an import found, as a site file would say it.
type Site struct {
	Kind       string
	Domain     string   // the forward zone, without its final dot; "": the source does not say
	Zones      []string // further zones the records need
	Forwarders []string
	LeaseTime  string // dhcp.lease_time; "": the source does not say
	TTL        int    // dns.ttl; 0: the source does not say
	Subnets    []site.SubnetSpec
	Hosts      []site.HostSpec
	Records    []site.RecordSpec
	Leases     []Lease
	// From is where each object was read, by its key path: "hosts[3]".
	From map[string]Pos
	// Notes are what was not translated, or was translated by a guess, each with its
	// place in the source.
	Notes []Note
}

// Pos is a place in a source: a file and a line (0: the file as a whole).
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Note is a directive an import did not translate, or translated by a guess.
type Note struct {
	Pos
	Msg string
}

func (n Note) String() string { return n.Pos.String() + ": " + n.Msg }

// Lease is an active DHCP lease of the source, which infrad keeps so that its client
// does not change address.
type Lease struct {
	IP       string    `json:"ip"`
	MAC      string    `json:"mac"`
	Hostname string    `json:"hostname,omitempty"`
	Expires  time.Time `json:"expires"`
}

// Options is what an import needs besides its sources.
type Options struct {
	// Domain is the site's domain when the import goes into a site: names under it
	// are written relative to it. "": the source's.
	Domain string
	// Subnets are the site's subnets: an address record in one of them is a host
	// (its PTR follows), and a lease finds its subnet.
	Subnets []netip.Prefix
	// Hosts and Records are the site's: what the import holds of them already (a
	// host of the same name and address, the same record, the PTR a host of the
	// site derives) is left out, said, so that one source may follow another.
	Hosts   []site.HostSpec
	Records []site.RecordSpec
	// TTL is the site's dns.ttl: a record with another keeps its own. 0: the TTL most
	// of the source's records have becomes the site's.
	TTL int
	Now time.Time // which leases have ended; zero: time.Now
	// NetBox's API token, and the TSIG key of a zone transfer ("name:algorithm:secret").
	Token, TSIG string
	HTTP        *http.Client // NetBox's API; nil: a client with a 30 s timeout
}

// Read imports the sources of kind. A source that cannot be read or parsed is an
// error that names its place; nothing is returned with it.
func Read(ctx context.Context, kind string, sources []string, opts Options) (*Site, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("import %s: no file given", kind)
	}
	b := newBuilder(kind, opts)
	var err error
	switch kind {
	case "dnsmasq":
		err = b.dnsmasq(sources)
	case "dhcpd":
		err = b.dhcpd(sources)
	case "kea":
		err = b.kea(sources)
	case "pihole":
		err = b.pihole(sources)
	case "zone":
		err = b.zones(ctx, sources)
	case "netbox":
		err = b.netbox(ctx, sources)
	default:
		return nil, fmt.Errorf("%q is not a kind of import: %s", kind, strings.Join(slices.Sorted(maps.Keys(Kinds)), ", "))
	}
	if err != nil {
		return nil, err
	}
	return b.finish(), nil
}

// builder gathers an import's objects as its parsers find them, names as the source
// wrote them; finish makes them a Site's.
type builder struct {
	opts    Options
	s       Site
	subnets []item[site.SubnetSpec]
	hosts   []item[hostItem]
	records []item[site.RecordSpec]
	leases  []item[Lease]
	// The hosts by their name (lower case) and by each address.
	hostNamed, hostAt map[string]int
}

type item[T any] struct {
	Pos
	v T
}

// hostItem is a host as a source gave it: a name that may be absolute, and the names
// that are its aliases (CNAMEs to it).
type hostItem struct {
	site.HostSpec
	aliases []string
}

func newBuilder(kind string, opts Options) *builder {
	return &builder{opts: opts, s: Site{Kind: kind, From: map[string]Pos{}}, hostNamed: map[string]int{}, hostAt: map[string]int{}}
}

func (b *builder) notef(p Pos, format string, args ...any) {
	b.s.Notes = append(b.s.Notes, Note{p, fmt.Sprintf(format, args...)})
}

func (b *builder) subnet(p Pos, sn site.SubnetSpec) {
	b.subnets = append(b.subnets, item[site.SubnetSpec]{p, sn})
}

// host adds h, or completes the host of its name or address a source gave before:
// dnsmasq's dhcp-host gives a MAC and a name whose address a hosts file gives.
func (b *builder) host(p Pos, h hostItem) {
	i, named := b.hostNamed[strings.ToLower(h.Name)]
	if j, at := b.hostAt[h.IP]; at && (!named || j < i) {
		i, named = j, true
	}
	if h.Name == "" && h.IP == "" || !named {
		b.hosts = append(b.hosts, item[hostItem]{p, h})
		b.index(len(b.hosts) - 1)
		return
	}
	defer b.index(i)
	{
		o := &b.hosts[i].v
		sameName := h.Name != "" && strings.EqualFold(o.Name, h.Name)
		sameIP := h.IP != "" && o.IP == h.IP
		if sameName && h.IP != "" && o.IP != "" && is6(h.IP) != is6(o.IP) && (o.IP6 == "" || o.IP6 == h.IP) {
			// One name at an address of each family: a dual-stack host.
			if is6(o.IP) {
				o.IP, o.IP6 = h.IP, o.IP
			} else {
				o.IP6 = h.IP
			}
			h.IP = o.IP
		}
		switch {
		case sameName && h.IP != "" && o.IP != "" && o.IP != h.IP:
			b.notef(p, "host %s is at %s here and at %s at %s: kept %s", h.Name, h.IP, o.IP, b.hosts[i].Pos, o.IP)
			return
		case sameIP && h.Name != "" && o.Name != "" && !sameName:
			if h.MAC != "" && o.MAC != "" && !strings.EqualFold(h.MAC, o.MAC) {
				b.notef(p, "%s is host %s's (%s) and host %s's (%s): kept %s", h.IP, o.Name, b.hosts[i].Pos, h.Name, p, o.Name)
				return
			}
			o.aliases = append(o.aliases, h.Name)
		}
		if o.IP == "" {
			o.IP = h.IP
		}
		if o.MAC == "" {
			o.MAC = h.MAC
		} else if h.MAC != "" && !strings.EqualFold(o.MAC, h.MAC) {
			b.notef(p, "host %s has MAC %s here and %s at %s: kept %s", o.Name, h.MAC, o.MAC, b.hosts[i].Pos, o.MAC)
		}
		if o.Name == "" {
			o.Name = h.Name
		}
		if o.IP6 == "" {
			o.IP6 = h.IP6
		}
		if o.DUID == "" {
			o.DUID = h.DUID
		}
		o.aliases = append(o.aliases, h.aliases...)
		if h.DHCP != nil && o.DHCP == nil {
			o.DHCP = h.DHCP
		}
	}
}

// index notes the name and addresses of the host at i, where no host before holds them.
func (b *builder) index(i int) {
	h := b.hosts[i].v
	note := func(m map[string]int, key string) {
		if _, taken := m[key]; key != "" && !taken {
			m[key] = i
		}
	}
	note(b.hostNamed, strings.ToLower(h.Name))
	note(b.hostAt, h.IP)
	note(b.hostAt, h.IP6)
}

func (b *builder) record(p Pos, r site.RecordSpec) {
	b.records = append(b.records, item[site.RecordSpec]{p, r})
}

// finish names everything relative to the domain, turns hosts that no subnet holds
// into records, and hosts without an address into notes.
func (b *builder) finish() *Site {
	s := &b.s
	if s.Domain == "" {
		s.Domain = b.opts.Domain
	}
	s.Domain = strings.TrimSuffix(strings.ToLower(s.Domain), ".")
	domain := s.Domain
	if b.opts.Domain != "" {
		domain = strings.TrimSuffix(strings.ToLower(b.opts.Domain), ".")
	}
	var nets []netip.Prefix
	nets = append(nets, b.opts.Subnets...)
	for _, sn := range b.subnets {
		if p, err := netip.ParsePrefix(sn.v.CIDR); err == nil {
			nets = append(nets, p)
		}
	}
	inSubnet := func(a string) bool {
		ip, err := netip.ParseAddr(a)
		return err == nil && slices.ContainsFunc(nets, func(p netip.Prefix) bool { return p.Contains(ip) })
	}
	for _, sn := range b.subnets {
		s.From[fmt.Sprintf("subnets[%d]", len(s.Subnets))] = sn.Pos
		s.Subnets = append(s.Subnets, sn.v)
	}
	// What the site holds already: its hosts' names at their addresses, its records.
	held := map[string]string{}
	for _, h := range b.opts.Hosts {
		fqdn := absolute(h.Name, domain)
		held[fqdn+" A "+h.IP] = "the site's host " + h.Name
		if h.IP6 != "" {
			held[fqdn+" A "+h.IP6] = "the site's host " + h.Name
		}
	}
	for _, r := range b.opts.Records {
		held[recordKey(r, domain)] = "the site's record"
	}
	hostNames := map[string]string{} // the import's hosts, by their names
	for _, h := range b.hosts {
		v := h.v
		fqdn := absolute(v.Name, domain)
		switch {
		case v.Name == "":
			b.notef(h.Pos, "a reservation of %s with no name: infrad's hosts have names; it is left out", orNone(v.MAC, v.IP))
			continue
		case v.IP == "":
			b.notef(h.Pos, "host %s has no fixed address (its client takes one from the pool): not a host in infrad, left out", v.Name)
			continue
		case held[fqdn+" A "+v.IP] != "":
			b.notef(h.Pos, "%s at %s is %s already: left out", fqdn, v.IP, held[fqdn+" A "+v.IP])
			continue
		case !inSubnet(v.IP):
			// No subnet: an address record, without the PTR a host would have.
			typ := "A"
			if strings.Contains(v.IP, ":") {
				typ = "AAAA"
			}
			if v.MAC != "" {
				b.notef(h.Pos, "host %s's address %s is in no subnet: its reservation for %s is left out, its name kept as an %s record", v.Name, v.IP, v.MAC, typ)
			}
			b.record(h.Pos, site.RecordSpec{Name: fqdn, Type: typ, Value: v.IP})
			for _, a := range v.aliases {
				b.record(h.Pos, site.RecordSpec{Name: absolute(a, domain), Type: typ, Value: v.IP})
			}
			continue
		}
		if v.IP6 != "" && !inSubnet(v.IP6) {
			b.notef(h.Pos, "host %s's IPv6 address %s is in no subnet: left out (a host's AAAA follows from its ip6, which a subnet holds: add the subnet, then the ip6)", v.Name, v.IP6)
			v.IP6 = ""
		}
		v.Name = relative(fqdn, domain, true)
		if strings.HasSuffix(v.Name, ".") {
			b.needZone(h.Pos, fqdn, domain)
		}
		s.From[fmt.Sprintf("hosts[%d]", len(s.Hosts))] = h.Pos
		s.Hosts = append(s.Hosts, v.HostSpec)
		hostNames[fqdn] = v.Name
		for _, a := range v.aliases {
			if af := absolute(a, domain); af != fqdn {
				b.record(h.Pos, site.RecordSpec{Name: af, Type: "CNAME", Value: fqdn})
			}
		}
	}
	for _, r := range b.records {
		v := r.v
		fqdn := absolute(v.Name, domain)
		if by := held[recordKey(v, domain)]; by != "" {
			b.notef(r.Pos, "%s %s %s is %s already: left out", fqdn, v.Type, v.Value, by)
			continue
		}
		if name, ok := hostNames[fqdn]; ok && (v.Type == "A" || v.Type == "AAAA") {
			b.notef(r.Pos, "%s %s %s is left out: %s is host %s, whose addresses are its ip and ip6, each in a subnet", fqdn, v.Type, v.Value, fqdn, name)
			continue
		}
		if ip, err := addrOfReverse(fqdn); err == nil && v.Type == "PTR" && held[absolute(v.Value, domain)+" A "+ip.String()] != "" {
			b.notef(r.Pos, "the PTR of %s follows from %s already: left out", ip, held[absolute(v.Value, domain)+" A "+ip.String()])
			continue
		}
		v.Name = relative(fqdn, domain, false)
		if a, err := addrOfReverse(fqdn); err == nil && inSubnet(a.String()) {
			// a reverse name of a subnet's: infrad serves its reverse zone
		} else if strings.HasSuffix(v.Name, ".") {
			b.needZone(r.Pos, fqdn, domain)
		}
		switch v.Type {
		case "CNAME", "MX", "SRV", "PTR": // a target name: absolute, or relative to the domain
			v.Value = targetName(v.Value, domain)
		}
		s.From[fmt.Sprintf("dns.records[%d]", len(s.Records))] = r.Pos
		s.Records = append(s.Records, v)
	}
	// A client reserved at its own address needs no lease; one reserved elsewhere
	// takes that address when it asks again (dhcpd keeps a dynamic lease it held
	// before its host block was written).
	reserved := map[string]site.HostSpec{}
	for _, h := range s.Hosts {
		if h.MAC != "" {
			reserved[strings.ToLower(h.MAC)] = h
		}
	}
	for _, l := range b.leases {
		if h, ok := reserved[strings.ToLower(l.v.MAC)]; ok {
			if h.IP != l.v.IP {
				b.notef(l.Pos, "the lease of %s to %s is left out: that client is host %s, reserved at %s", l.v.IP, l.v.MAC, h.Name, h.IP)
			}
			continue
		}
		s.From[fmt.Sprintf("leases[%d]", len(s.Leases))] = l.Pos
		s.Leases = append(s.Leases, l.v)
	}
	slices.SortStableFunc(s.Notes, func(a, b Note) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		return a.Line - b.Line
	})
	return s
}

// recordKey is a record as the site would hold it: its name and target absolute, an
// address record's like a host's ("name A address", AAAA too).
func recordKey(r site.RecordSpec, domain string) string {
	typ, value := strings.ToUpper(r.Type), r.Value
	switch typ {
	case "AAAA":
		typ = "A"
	case "CNAME", "MX", "SRV", "PTR":
		value = targetName(value, domain)
	case "TXT":
		if strings.Count(value, `"`) == 2 && strings.HasPrefix(value, `"`) && strings.HasSuffix(value, `"`) {
			value = value[1 : len(value)-1] // one string, quoted or not
		}
	}
	if a, err := netip.ParseAddr(value); err == nil {
		value = a.String()
	}
	return absolute(r.Name, domain) + " " + typ + " " + value
}

// needZone notes that fqdn lies outside domain: a zone of the site must hold it.
func (b *builder) needZone(p Pos, fqdn, domain string) {
	for _, z := range append([]string{domain}, b.s.Zones...) {
		if z != "" && (fqdn == z+"." || strings.HasSuffix(fqdn, "."+z+".")) {
			return
		}
	}
	zone := strings.TrimSuffix(fqdn, ".")
	if _, parent, ok := strings.Cut(zone, "."); ok && strings.Contains(parent, ".") {
		zone = parent
	}
	b.s.Zones = append(b.s.Zones, zone)
	b.notef(p, "%s is outside %s: zone %s is added to dns.zones for it", fqdn, orNone(domain, ""), zone)
}

// absolute is name as a fully qualified name: a bare label or a name without a final
// dot lies under domain unless it already ends in it.
func absolute(name, domain string) string {
	name = strings.ToLower(name)
	switch {
	case name == "@":
		return domain + "."
	case strings.HasSuffix(name, "."):
		return name
	case domain == "":
		return name + "."
	case name == domain || strings.HasSuffix(name, "."+domain):
		return name + "."
	case strings.Contains(name, ".") && !strings.HasSuffix(name, "."+domain):
		// dnsmasq and hosts files write names in full without the final dot.
		return name + "."
	}
	return name + "." + domain + "."
}

// relative writes fqdn as the site file does: "@" for the domain, a name under it
// relative to it (one label for a host), any other absolute.
func relative(fqdn, domain string, host bool) string {
	if domain == "" {
		return fqdn
	}
	if fqdn == domain+"." {
		if host {
			return fqdn
		}
		return "@"
	}
	if rel, ok := strings.CutSuffix(fqdn, "."+domain+"."); ok && (!host || !strings.Contains(rel, ".")) {
		return rel
	}
	return fqdn
}

// targetName is a record's target as the site file takes it: a relative target is
// completed with the domain by the site, so one outside it is written absolute.
func targetName(value, domain string) string {
	fields := strings.Fields(value)
	if len(fields) == 0 {
		return value
	}
	last := fields[len(fields)-1]
	fields[len(fields)-1] = absolute(last, domain)
	return strings.Join(fields, " ")
}

// maxSource bounds a source file: the largest lease files run to tens of megabytes.
const maxSource = 256 << 20

// readSource reads a source file: a regular file (not a device or a pipe a
// configuration line might name) of at most maxSource bytes.
func readSource(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > maxSource {
		return nil, fmt.Errorf("%s is larger than %d MiB", path, maxSource>>20)
	}
	return io.ReadAll(io.LimitReader(f, maxSource))
}

func is6(a string) bool { return strings.Contains(a, ":") }

func orNone(s, alt string) string {
	if s != "" {
		return s
	}
	if alt != "" {
		return alt
	}
	return "(none)"
}

// subnetName makes a subnet's name from what a source calls it, else from its network.
func subnetName(given string, p netip.Prefix) string {
	if n := site.SanitizeHostname(given); n != "" {
		return n
	}
	return "net-" + strings.NewReplacer(".", "-", ":", "-").Replace(strings.TrimRight(p.Addr().String(), ":"))
}

// lease keeps l unless it has ended.
func (b *builder) lease(p Pos, l Lease) {
	l.Hostname, _, _ = strings.Cut(l.Hostname, ".") // a lease's name is a label: Kea keeps its FQDN
	if l.Expires.After(b.opts.Now) {
		b.leases = append(b.leases, item[Lease]{p, l})
	}
}
