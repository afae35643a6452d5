package importer

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/csv"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// dnsmasqIgnored are dnsmasq's settings of itself, which a site has no counterpart
// for or infrad does on its own: each is noted, as what it is, and left.
var dnsmasqIgnored = map[string]string{
	"interface": "infrad's dhcp.interfaces and listen addresses say where it serves", "listen-address": "infrad's dns.listen says where it listens",
	"bind-interfaces": "infrad binds its listen addresses", "bind-dynamic": "infrad binds its listen addresses",
	"except-interface": "infrad's dhcp.interfaces say where it serves", "no-dhcp-interface": "infrad's dhcp.interfaces say where it serves",
	"port": "infrad's dns.listen holds the port", "user": "infrad runs as its systemd unit says", "group": "infrad runs as its systemd unit says",
	"pid-file": "not infrad's", "log-queries": "infrad logs as it does", "log-dhcp": "infrad logs as it does", "log-facility": "infrad logs to its journal",
	"cache-size": "infrad's forwarder cache sizes itself", "no-negcache": "infrad caches as RFC 2308 says", "no-resolv": "infrad forwards only to dns.forwarders",
	"resolv-file": "infrad forwards only to dns.forwarders", "strict-order": "infrad tries its forwarders in turn", "all-servers": "infrad tries its forwarders in turn",
	"domain-needed": "infrad never forwards a bare name", "bogus-priv": "infrad answers the reverse zones of its subnets itself",
	"expand-hosts": "infrad's hosts are names under the domain", "local": "the domain is infrad's own zone", "dhcp-authoritative": "infrad answers as the network's server",
	"dhcp-leasefile": "infrad keeps leases in its store", "dhcp-rapid-commit": "infrad answers rapid commit", "enable-ra": "subnets[].ra sends router advertisements",
	"dhcp-lease-max": "infrad's pools bound their leases", "no-hosts": "/etc/hosts is not read: give it as a file to import it", "no-poll": "not infrad's",
	"stop-dns-rebind": "not infrad's", "rebind-localhost-ok": "not infrad's", "dnssec": "dns.dnssec signs infrad's own zones", "trust-anchor": "not infrad's",
	"local-service": "dns.recursion_allow says who may use the forwarders", "keep-in-foreground": "not infrad's", "dhcp-fqdn": "infrad's lease names are under the domain",
	"domain-suffix": "infrad's hosts are names under the domain", "quiet-dhcp": "infrad logs as it does", "quiet-dhcp6": "infrad logs as it does", "quiet-ra": "infrad logs as it does",
	"dhcp-ignore-names": "not infrad's", "dhcp-script": "infrad's API and change log tell what changed", "min-port": "not infrad's",
}

// dnsmasq reads dnsmasq configuration files (and the conf-files, hosts files and
// ethers files they name).
func (b *builder) dnsmasq(files []string) error {
	d := &dnsmasqReader{b: b, seen: map[string]bool{}}
	for _, f := range files {
		data, err := readSource(f)
		if err == nil {
			err = d.source(f, data)
		}
		if err != nil {
			return err
		}
	}
	d.done()
	return nil
}

// source reads one of the files a dnsmasq site is given as: an ethers file, a hosts
// file, a lease file or a configuration file, told apart by what they hold.
func (d *dnsmasqReader) source(path string, data []byte) error {
	switch sniff(data) {
	case "ethers":
		return d.b.ethers(path, data)
	case "hosts":
		return d.b.hostLines(path, data)
	case "leases":
		return d.b.dnsmasqLeases(path, data)
	}
	return d.file(path, Pos{})
}

type dnsmasqReader struct {
	b         *builder
	seen      map[string]bool
	all       dnsmasqOptions // dhcp-option without a tag: every subnet's
	tagged    map[string]*dnsmasqOptions
	ranges    []dnsmasqRange
	hostTags  map[string]item[string] // a dhcp-host's set: tag, by its MAC
	leaseTime []item[string]
}

// dnsmasqOptions are the DHCP options given to every client, or to those of a tag.
type dnsmasqOptions struct {
	Pos    // the first line that gives one
	spec   site.DHCPOptionsSpec
	router string
	used   bool // a subnet or a host took them
}

// optionsFor are the options of the tag in f[0] ("tag:lab"), with f[0] dropped, or
// every client's.
func (d *dnsmasqReader) optionsFor(p Pos, f []string) (*dnsmasqOptions, []string) {
	o := &d.all
	if len(f) > 0 && strings.HasPrefix(f[0], "tag:") {
		if d.tagged == nil {
			d.tagged = map[string]*dnsmasqOptions{}
		}
		if o = d.tagged[f[0][4:]]; o == nil {
			o = &dnsmasqOptions{}
			d.tagged[f[0][4:]] = o
		}
		f = f[1:]
	}
	if o.File == "" {
		o.Pos = p
	}
	return o, f
}

type dnsmasqRange struct {
	Pos
	tag        string
	start, end netip.Addr
	bits       int // from the netmask or prefix length; 0: not given
}

func (d *dnsmasqReader) file(path string, from Pos) error {
	if d.seen[path] {
		return nil
	}
	d.seen[path] = true
	data, err := readSource(path)
	if err != nil {
		if from.File != "" {
			return fmt.Errorf("%s: %w", from, err)
		}
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, value, _ := strings.Cut(line, "=")
		if err := d.directive(Pos{path, n}, strings.TrimSpace(key), strings.TrimSpace(value), filepath.Dir(path)); err != nil {
			return err
		}
	}
	return sc.Err()
}

// directive translates one line.
func (d *dnsmasqReader) directive(p Pos, key, value, dir string) error {
	b := d.b
	path := func(v string) string {
		if filepath.IsAbs(v) {
			return v
		}
		return filepath.Join(dir, v) // dnsmasq's is its working directory; the import's is the file's
	}
	switch key {
	case "conf-file":
		return d.file(path(value), p)
	case "addn-hosts", "dhcp-hostsfile":
		if key == "dhcp-hostsfile" {
			return d.hostsFile(path(value), p)
		}
		return b.hostsFile(path(value), p)
	case "read-ethers":
		b.notef(p, "read-ethers: dnsmasq reads /etc/ethers; give that file to the import (as FILE) to bring its reservations")
	case "domain":
		name, rest, _ := strings.Cut(value, ",")
		if rest != "" {
			b.notef(p, "domain %s for %s only: infrad has one domain for its hosts (%s is kept)", name, rest, name)
		}
		if b.s.Domain != "" && b.s.Domain != name {
			b.notef(p, "a second domain %s: kept %s", name, b.s.Domain)
			return nil
		}
		b.s.Domain = name
	case "server":
		if strings.HasPrefix(value, "/") {
			b.notef(p, "server=%s forwards one domain to its own server: infrad forwards everything outside its zones to dns.forwarders alone; not translated", value)
			return nil
		}
		addr, port, hasPort := strings.Cut(value, "#")
		addr, _, _ = strings.Cut(addr, "@") // a source address or interface
		if _, err := netip.ParseAddr(addr); err != nil {
			return fmt.Errorf("%s: server=%s: %q is not an address", p, value, addr)
		}
		if hasPort {
			addr = netip.AddrPortFrom(netip.MustParseAddr(addr), uint16(atoi(port))).String()
		}
		b.s.Forwarders = append(b.s.Forwarders, addr)
	case "dhcp-range":
		return d.dhcpRange(p, value)
	case "dhcp-host":
		return d.dhcpHost(p, value)
	case "dhcp-option", "dhcp-option-force":
		return d.dhcpOption(p, value)
	case "dhcp-boot":
		o, f := d.optionsFor(p, splitList(value))
		if len(f) > 0 {
			o.spec.BootFile = f[0]
		}
		if len(f) > 2 {
			o.spec.NextServer = f[2]
		}
	case "address":
		return d.address(p, value)
	case "host-record":
		return d.hostRecord(p, value)
	case "cname":
		f := splitList(value)
		if len(f) < 2 {
			return fmt.Errorf("%s: cname=%s: an alias and a target", p, value)
		}
		ttl := ttlOf(f[len(f)-1])
		if ttl != nil {
			f = f[:len(f)-1]
		}
		target := f[len(f)-1]
		for _, alias := range f[:len(f)-1] {
			d.bare(p, key, alias)
			b.record(p, site.RecordSpec{Name: alias, Type: "CNAME", Value: target, TTL: ttl})
		}
	case "srv-host":
		f := splitList(value)
		if len(f) < 2 {
			b.notef(p, "srv-host=%s says the service does not exist (no target): not translated", value)
			return nil
		}
		port, prio, weight := "0", "0", "0"
		if len(f) > 2 {
			port = f[2]
		}
		if len(f) > 3 {
			prio = f[3]
		}
		if len(f) > 4 {
			weight = f[4]
		}
		b.record(p, site.RecordSpec{Name: f[0], Type: "SRV", Value: strings.Join([]string{prio, weight, port, f[1]}, " ")})
	case "mx-host":
		f := splitList(value)
		pref := "1"
		if len(f) > 2 {
			pref = f[2]
		}
		if len(f) < 2 {
			b.notef(p, "mx-host=%s names no target (dnsmasq then uses its own name): not translated", value)
			return nil
		}
		b.record(p, site.RecordSpec{Name: f[0], Type: "MX", Value: pref + " " + f[1]})
	case "txt-record":
		name, texts, _ := strings.Cut(value, ",")
		b.record(p, site.RecordSpec{Name: name, Type: "TXT", Value: txtValue(texts)})
	case "ptr-record":
		f := splitList(value)
		if len(f) != 2 {
			b.notef(p, "ptr-record=%s without a target: not translated", value)
			return nil
		}
		b.record(p, site.RecordSpec{Name: f[0], Type: "PTR", Value: f[1]})
	case "local-ttl", "auth-ttl":
		if n, err := strconv.Atoi(value); err == nil && n > 0 {
			b.s.TTL = n
		}
	default:
		if why, ok := dnsmasqIgnored[key]; ok {
			b.notef(p, "%s: left out (%s)", key, why)
			return nil
		}
		b.notef(p, "%s: not translated (infrad has no counterpart)", strings.TrimSpace(key+" "+value))
	}
	return nil
}

// dhcpRange is dhcp-range=[tag:T,][set:T,]START[,END|static][,MODE][,NETMASK|PREFIXLEN][,BROADCAST][,LEASE].
func (d *dnsmasqReader) dhcpRange(p Pos, value string) error {
	var r dnsmasqRange
	r.Pos = p
	var rest []string
	for _, f := range splitList(value) {
		switch {
		case strings.HasPrefix(f, "set:"), strings.HasPrefix(f, "net:"):
			r.tag = f[4:]
		case strings.HasPrefix(f, "tag:"):
			d.b.notef(p, "dhcp-range: %s left out (infrad's subnets are chosen by address, not by tags)", f)
		case strings.HasPrefix(f, "interface:") || strings.HasPrefix(f, "constructor:"):
			d.b.notef(p, "dhcp-range: %s not translated: give the range's addresses", f)
			return nil
		default:
			rest = append(rest, f)
		}
	}
	if len(rest) == 0 {
		return fmt.Errorf("%s: dhcp-range=%s: no start address", p, value)
	}
	var err error
	if r.start, err = netip.ParseAddr(rest[0]); err != nil {
		return fmt.Errorf("%s: dhcp-range=%s: %q is not an address", p, value, rest[0])
	}
	r.end = r.start
	static := false
	for _, f := range rest[1:] {
		a, err := netip.ParseAddr(f)
		switch {
		case f == "static":
			static = true
		case f == "ra-only" || f == "slaac" || f == "ra-stateless" || f == "ra-names" || f == "ra-advrouter" || f == "off-link" || f == "proxy":
			d.b.notef(p, "dhcp-range mode %s: not translated (subnets[].ra and dhcp6 say how IPv6 is served)", f)
		case err == nil && a.Is4() && r.end == r.start && !static && isAfter(a, r.start):
			r.end = a
		case err == nil && a.Is4() && r.bits == 0:
			if bits := maskBits(a); bits > 0 {
				r.bits = bits
			}
		case err == nil && a.Is6() && r.end == r.start && !static:
			r.end = a
		case err == nil: // a broadcast address
		case r.start.Is6() && isNumber(f) && r.bits == 0 && atoi(f) <= 128:
			r.bits = atoi(f)
		case leaseDuration(f) != "":
			d.leaseTime = append(d.leaseTime, item[string]{p, leaseDuration(f)})
		default:
			return fmt.Errorf("%s: dhcp-range=%s: %q is not an address, a netmask or a lease time", p, value, f)
		}
	}
	if static {
		r.end = netip.Addr{} // a subnet served to reserved hosts alone
	}
	d.ranges = append(d.ranges, r)
	return nil
}

var macRe = regexp.MustCompile(`^([0-9a-fA-F*]{1,2}[:-]){5}[0-9a-fA-F*]{1,2}$`)

// dhcpHost is dhcp-host=[MAC…][,id:CLIENTID|*][,set:TAG][,tag:TAG][,IPV4][,[IPV6]][,NAME][,LEASE][,ignore].
func (d *dnsmasqReader) dhcpHost(p Pos, value string) error {
	var h hostItem
	var macs []string
	var tag string
	for _, f := range splitList(value) {
		switch {
		case macRe.MatchString(f):
			if strings.Contains(f, "*") {
				d.b.notef(p, "dhcp-host: MAC pattern %s not translated (a reservation is of one MAC)", f)
				continue
			}
			macs = append(macs, strings.ToLower(strings.ReplaceAll(f, "-", ":")))
		case strings.HasPrefix(f, "id:"):
			if id := f[3:]; id != "*" && strings.HasPrefix(id, "00:0") && strings.Count(id, ":") > 3 {
				h.DUID = id // a DHCPv6 client's DUID
			} else if id != "*" {
				d.b.notef(p, "dhcp-host: client identifier %s not translated (infrad reserves by MAC, or by a DHCPv6 client's DUID)", id)
			}
		case strings.HasPrefix(f, "set:"):
			tag = f[4:] // its options (dhcp-option=tag:…) become the host's
		case strings.HasPrefix(f, "tag:") || strings.HasPrefix(f, "net:"):
			d.b.notef(p, "dhcp-host: %s left out (infrad has no tags: a host's dhcp_options are its own)", f)
		case f == "ignore":
			d.b.notef(p, "dhcp-host=%s ignores its client: infrad has no such host; left out", value)
			return nil
		case strings.HasPrefix(f, "[") && strings.HasSuffix(f, "]"):
			a, err := netip.ParseAddr(f[1 : len(f)-1])
			if err != nil {
				return fmt.Errorf("%s: dhcp-host: %q is not an IPv6 address", p, f)
			}
			h.IP6 = a.String()
		case isIPv4(f):
			h.IP = f
		case leaseDuration(f) != "" || f == "infinite":
			d.b.notef(p, "dhcp-host: lease time %s left out (infrad has one lease time, dhcp.lease_time; a reserved host keeps its address anyway)", f)
		case f == "":
		default:
			if err := site.CheckHostname(strings.Split(f, ".")[0]); err != nil {
				return fmt.Errorf("%s: dhcp-host: %q is neither a MAC, an address, a lease time nor a host name", p, f)
			}
			h.Name = f
		}
	}
	switch len(macs) {
	case 0:
	case 1:
		h.MAC = macs[0]
	default:
		h.MAC = macs[0]
		d.b.notef(p, "dhcp-host gives %d MACs (one machine's interfaces, one at a time): %s is the host's; %s left out", len(macs), macs[0], strings.Join(macs[1:], ", "))
	}
	if h.IP == "" && h.IP6 != "" {
		h.IP, h.IP6 = h.IP6, ""
	}
	if tag != "" && h.MAC != "" {
		if d.hostTags == nil {
			d.hostTags = map[string]item[string]{}
		}
		d.hostTags[h.MAC] = item[string]{p, tag}
	}
	d.b.host(p, h)
	return nil
}

// dnsmasqLeases keeps the live leases of dnsmasq's lease file (dnsmasq.leases):
// EXPIRY MAC ADDRESS NAME CLIENT-ID a line, an expiry of 0 never ending; DHCPv6's
// lines (after "duid") are left out, said once.
func (b *builder) dnsmasqLeases(path string, data []byte) error {
	v6 := false
	for n, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		p := Pos{path, n + 1}
		switch {
		case len(f) == 0:
			continue
		case f[0] == "duid":
			v6 = true
			b.notef(p, "DHCPv6 leases are not imported (the client asks again and gets an address)")
			continue
		case v6:
			continue
		}
		if len(f) < 4 || !isUnixTime(f[0]) || !macRe.MatchString(f[1]) || !isIPv4(f[2]) {
			return fmt.Errorf("%s: %q is not a lease (EXPIRY MAC ADDRESS NAME CLIENT-ID)", p, line)
		}
		secs, _ := strconv.ParseInt(f[0], 10, 64)
		expires := time.Unix(secs, 0).UTC()
		if f[0] == "0" {
			expires = b.opts.Now.AddDate(1, 0, 0)
		}
		name := f[3]
		if name == "*" {
			name = ""
		}
		b.lease(p, Lease{IP: f[2], MAC: strings.ToLower(f[1]), Hostname: name, Expires: expires})
	}
	return nil
}

// dhcpHostsFile is a dhcp-hostsfile: one dhcp-host's value a line.
func (d *dnsmasqReader) hostsFile(path string, from Pos) error {
	data, err := readSource(path)
	if err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	for n, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && line[0] != '#' {
			if err := d.dhcpHost(Pos{path, n + 1}, line); err != nil {
				return err
			}
		}
	}
	return nil
}

// dhcpOption is dhcp-option=[tag:T,…][encap:N,][vendor:V,]OPTION,VALUES.
func (d *dnsmasqReader) dhcpOption(p Pos, value string) error {
	f := splitList(value)
	if len(f) > 1 && strings.HasPrefix(f[0], "tag:") && strings.HasPrefix(f[1], "tag:") {
		d.b.notef(p, "dhcp-option=%s applies where several tags meet: not translated (set dhcp_options on the subnet or host it is for)", value)
		return nil
	}
	o, f := d.optionsFor(p, f)
	if len(f) > 0 && (strings.HasPrefix(f[0], "net:") || strings.HasPrefix(f[0], "encap:") || strings.HasPrefix(f[0], "vendor:") || strings.HasPrefix(f[0], "option6:")) {
		d.b.notef(p, "dhcp-option=%s applies to %s alone: not translated (set dhcp_options on the subnet or host it is for)", value, f[0])
		return nil
	}
	if len(f) == 0 {
		return fmt.Errorf("%s: dhcp-option with no option", p)
	}
	opt, vals := strings.TrimPrefix(f[0], "option:"), f[1:]
	switch opt {
	case "3", "router":
		if len(vals) > 0 {
			o.router = vals[0]
		}
	case "6", "dns-server":
		o.spec.DNS = ownAddrs(vals)
	case "42", "ntp-server":
		o.spec.NTP = ownAddrs(vals)
	case "119", "domain-search":
		o.spec.Search = vals
	case "15", "domain-name":
		if len(vals) > 0 && d.b.s.Domain == "" {
			d.b.s.Domain = vals[0]
		}
	case "26", "mtu":
		if len(vals) > 0 {
			o.spec.MTU = atoi(vals[0])
		}
	case "66", "tftp-server":
		if len(vals) > 0 {
			o.spec.NextServer = vals[0]
		}
	case "67", "bootfile-name":
		if len(vals) > 0 {
			o.spec.BootFile = vals[0]
		}
	case "1", "netmask":
	default:
		d.b.notef(p, "dhcp-option %s: not translated (infrad's DHCP options are dns, ntp, domain_search, mtu, next_server, boot_file and the gateway)", opt)
	}
	return nil
}

// ownAddrs drops 0.0.0.0, which dnsmasq reads as "this server": infrad's default.
func ownAddrs(vals []string) []string {
	var out []string
	for _, v := range vals {
		if v != "0.0.0.0" && v != "[::]" {
			out = append(out, v)
		}
	}
	return out
}

// address is address=/NAME/…/[ADDRESS]: every NAME (and the names under it) is ADDRESS.
func (d *dnsmasqReader) address(p Pos, value string) error {
	parts := strings.Split(value, "/")
	if len(parts) < 3 || parts[0] != "" {
		return fmt.Errorf("%s: address=%s: not /name/address", p, value)
	}
	addr := parts[len(parts)-1]
	if addr == "" || addr == "#" {
		d.b.notef(p, "address=%s answers NXDOMAIN (or a null address): not translated", value)
		return nil
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Errorf("%s: address=%s: %q is not an address", p, value, addr)
	}
	typ := "A"
	if a.Is6() {
		typ = "AAAA"
	}
	for _, name := range parts[1 : len(parts)-1] {
		if name == "" || name == "#" {
			d.b.notef(p, "address=%s matches every name: not translated", value)
			continue
		}
		d.b.record(p, site.RecordSpec{Name: name, Type: typ, Value: a.String()})
		d.b.record(p, site.RecordSpec{Name: "*." + name, Type: typ, Value: a.String()})
	}
	return nil
}

// hostRecord is host-record=NAME[,NAME…],[IPV4][,IPV6][,TTL]: a host, its first name
// the PTR's.
func (d *dnsmasqReader) hostRecord(p Pos, value string) error {
	var h hostItem
	for _, f := range splitList(value) {
		a, err := netip.ParseAddr(f)
		switch {
		case err == nil && a.Is4():
			h.IP = a.String()
		case err == nil:
			h.IP6 = a.String()
		case isNumber(f):
		case h.Name == "":
			h.Name = f
		default:
			h.aliases = append(h.aliases, f)
		}
	}
	if h.Name == "" {
		return fmt.Errorf("%s: host-record=%s: no name", p, value)
	}
	d.bare(p, "host-record", h.Name)
	if h.IP == "" {
		h.IP, h.IP6 = h.IP6, ""
	}
	d.b.host(p, h)
	return nil
}

// bare notes a name without a dot where dnsmasq takes names as they are written
// (expand-hosts adds the domain to the hosts files' names alone): dnsmasq serves it at
// the root, which clients reach through their search domain; infrad serves it under
// the domain, which they reach the same way.
func (d *dnsmasqReader) bare(p Pos, key, name string) {
	if !strings.Contains(name, ".") {
		d.b.notef(p, "%s: %s is a bare name, which dnsmasq serves as it is (%s.), not under the domain: infrad serves it under the domain", key, name, name)
	}
}

// done makes the subnets of the ranges, with the options that apply to all of them.
func (d *dnsmasqReader) done() {
	b := d.b
	for _, r := range d.ranges {
		bits := r.bits
		if bits == 0 {
			bits = 24
			if r.start.Is6() {
				bits = 64
			}
			b.notef(r.Pos, "dhcp-range gives no netmask (dnsmasq takes the interface's): took /%d", bits)
		}
		cidr := netip.PrefixFrom(r.start, bits).Masked()
		sn := site.SubnetSpec{Name: subnetName(r.tag, cidr), CIDR: cidr.String()}
		if r.end.IsValid() {
			sn.Ranges = []site.RangeSpec{{Kind: "dhcp", Start: r.start.String(), End: r.end.String()}}
		}
		if cidr.Addr().Is6() {
			sn.DHCP6 = "stateful"
			if !r.end.IsValid() {
				sn.DHCP6 = "stateless"
			}
		}
		o := d.all
		if t := d.tagged[r.tag]; t != nil {
			o.spec, o.router = merged(d.all.spec, t.spec), cmp.Or(t.router, d.all.router)
			t.used = true
		}
		if a, err := netip.ParseAddr(o.router); err == nil && cidr.Contains(a) {
			sn.Gateway = o.router
		} else if cidr.Addr().Is4() {
			b.notef(r.Pos, "no dhcp-option router for %s: dnsmasq gives its own address as the router; infrad gives the subnet's gateway, which is left unset", cidr)
		}
		if anyOptions(o.spec) {
			sn.DHCP = &o.spec
		}
		b.subnet(r.Pos, sn)
	}
	for i := range b.hosts {
		h := &b.hosts[i].v
		tag, tagged := d.hostTags[h.MAC]
		if tagged && d.tagged[tag.v] == nil {
			b.notef(tag.Pos, "dhcp-host: set:%s left out (no dhcp-option is for that tag)", tag.v)
		}
		if t := d.tagged[tag.v]; t != nil && tagged {
			opts := t.spec
			h.DHCP, t.used = &opts, true
			if t.router != "" {
				b.notef(t.Pos, "dhcp-option router for host %s alone: not translated (a host's gateway is its subnet's)", h.Name)
			}
		}
	}
	for tag, t := range d.tagged {
		if !t.used {
			b.notef(t.Pos, "options for tag:%s, which no dhcp-range and no dhcp-host sets: not translated (set dhcp_options on the subnet or host they are for)", tag)
		}
	}
	if len(d.leaseTime) > 0 {
		b.s.LeaseTime = d.leaseTime[0].v
		for _, lt := range d.leaseTime[1:] {
			if lt.v != b.s.LeaseTime {
				b.notef(lt.Pos, "lease time %s: infrad has one lease time for the site, %s is kept", lt.v, b.s.LeaseTime)
			}
		}
	}
}

// sniff tells a hosts file ("hosts": an address first) and an ethers file
// ("ethers": a MAC first) from a configuration file ("").
func sniff(data []byte) string {
	for _, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if _, err := netip.ParseAddr(f[0]); err == nil {
			return "hosts"
		}
		if f[0] == "duid" || (len(f) >= 3 && isUnixTime(f[0]) && macRe.MatchString(f[1])) {
			return "leases"
		}
		if _, err := site.ParseMAC(f[0]); err == nil {
			return "ethers"
		}
		return ""
	}
	return ""
}

// splitList splits a dnsmasq value at its commas, trimming each field.
func splitList(s string) []string {
	f := strings.Split(s, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

// txtValue is a TXT record's strings ("a","b") as the site writes them: one string
// bare, several quoted one after another.
func txtValue(s string) string {
	r := csv.NewReader(strings.NewReader(s))
	r.LazyQuotes = true
	f, err := r.Read()
	if err != nil || len(f) == 0 {
		return s
	}
	if len(f) == 1 {
		return f[0]
	}
	for i := range f {
		f[i] = strconv.Quote(f[i])
	}
	return strings.Join(f, " ")
}

// leaseDuration is dnsmasq's lease time (45m, 12h, 1d, 3600, infinite) as the site
// file writes one; "": not one.
func leaseDuration(s string) string {
	if s == "infinite" || s == "deprecated" {
		return ""
	}
	if isNumber(s) {
		return duration(time.Duration(atoi(s)) * time.Second)
	}
	if len(s) < 2 || !isNumber(s[:len(s)-1]) {
		return ""
	}
	n := atoi(s[:len(s)-1])
	switch s[len(s)-1] {
	case 's':
		return duration(time.Duration(n) * time.Second)
	case 'm':
		return duration(time.Duration(n) * time.Minute)
	case 'h':
		return duration(time.Duration(n) * time.Hour)
	case 'd':
		return duration(time.Duration(n) * 24 * time.Hour)
	case 'w':
		return duration(time.Duration(n) * 7 * 24 * time.Hour)
	}
	return ""
}

// duration writes d as the site file does: 12h, 45m, 90s.
func duration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

func ttlOf(s string) *int {
	if !isNumber(s) {
		return nil
	}
	n := atoi(s)
	return &n
}

func isNumber(s string) bool {
	if s == "" || len(s) > 9 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// isUnixTime reports whether s is a time in seconds since 1970.
func isUnixTime(s string) bool {
	_, err := strconv.ParseUint(s, 10, 40)
	return err == nil
}

func isIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

func isAfter(a, b netip.Addr) bool { return a.Compare(b) > 0 }

// maskBits is the prefix length of a netmask; 0: not a netmask.
func maskBits(a netip.Addr) int {
	v := a.As4()
	m := uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
	bits := 0
	for m&0x80000000 != 0 {
		bits++
		m <<= 1
	}
	if m != 0 || bits == 0 {
		return 0
	}
	return bits
}
