package importer

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// dhcpd reads ISC dhcpd.conf files (and what they include), dhcpd.leases files and
// Kea's lease files (kea-leases4.csv), told apart by what they hold.
func (b *builder) dhcpd(files []string) error {
	d := &dhcpdReader{b: b}
	for _, f := range files {
		data, err := readSource(f)
		if err != nil {
			return err
		}
		if leases, err := b.keaLeaseFile(f, data); leases || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		stmts, err := parseISC(f, data)
		if err != nil {
			return err
		}
		if isLeaseFile(stmts) {
			b.dhcpdLeases(stmts)
			continue
		}
		if err := d.scope(stmts, &dhcpdScope{}, "", false); err != nil {
			return err
		}
	}
	return nil
}

// stmt is one statement of ISC's syntax: its words, and its block when it has one.
type stmt struct {
	Pos
	words []string
	block []stmt
	isBlk bool
}

func (s stmt) arg(i int) string {
	if i < len(s.words) {
		return s.words[i]
	}
	return ""
}

// values are a statement's words from i on, its commas dropped and quotes removed.
func (s stmt) values(i int) []string {
	var out []string
	for _, w := range s.words[min(i, len(s.words)):] {
		if w != "," {
			out = append(out, strings.Trim(w, `"`))
		}
	}
	return out
}

func (s stmt) String() string { return strings.Join(s.words, " ") }

// parseISC parses dhcpd.conf's and dhcpd.leases's syntax: statements ended by ";",
// blocks in braces, "#" comments, quoted strings.
func parseISC(file string, data []byte) ([]stmt, error) {
	type frame struct {
		s    stmt
		list []stmt
	}
	stack := []frame{{}}
	var cur stmt
	line := 1
	flush := func() error {
		if len(cur.words) > 0 {
			return fmt.Errorf("%s: %q is not ended by \";\"", cur.Pos, cur.String())
		}
		return nil
	}
	for i := 0; i < len(data); {
		c := data[i]
		p := Pos{file, line}
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
		case c == '"':
			j := i + 1
			for j < len(data) && data[j] != '"' {
				if data[j] == '\\' {
					j++
				}
				if j < len(data) && data[j] == '\n' {
					line++
				}
				j++
			}
			if j >= len(data) {
				return nil, fmt.Errorf("%s: a quoted string that does not end", p)
			}
			if len(cur.words) == 0 {
				cur.Pos = p
			}
			cur.words = append(cur.words, string(data[i:j+1]))
			i = j + 1
		case c == ';':
			if len(cur.words) > 0 {
				stack[len(stack)-1].list = append(stack[len(stack)-1].list, cur)
			}
			cur = stmt{}
			i++
		case c == '{':
			if len(cur.words) == 0 {
				return nil, fmt.Errorf("%s: a block with no statement before it", p)
			}
			cur.isBlk = true
			stack = append(stack, frame{s: cur})
			cur = stmt{}
			i++
		case c == '}':
			if err := flush(); err != nil {
				return nil, err
			}
			if len(stack) == 1 {
				return nil, fmt.Errorf("%s: a \"}\" that closes no block", p)
			}
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			top.s.block = top.list
			stack[len(stack)-1].list = append(stack[len(stack)-1].list, top.s)
			i++
		case c == ',':
			cur.words = append(cur.words, ",")
			i++
		default:
			j := i
			for j < len(data) && !strings.ContainsRune(" \t\r\n;{},#\"", rune(data[j])) {
				j++
			}
			if len(cur.words) == 0 {
				cur.Pos = p
			}
			cur.words = append(cur.words, string(data[i:j]))
			i = j
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(stack) > 1 {
		top := stack[len(stack)-1].s
		return nil, fmt.Errorf("%s: the block of %q does not end (a \"}\" is missing)", top.Pos, top.String())
	}
	return stack[0].list, nil
}

func isLeaseFile(stmts []stmt) bool {
	for _, s := range stmts {
		switch s.arg(0) {
		case "lease", "lease6", "ia-na", "ia-pd", "server-duid", "authoring-byte-order":
			return true
		}
	}
	return false
}

type dhcpdReader struct {
	b *builder
}

// dhcpdScope is what a scope's statements set, for the subnets and hosts in it.
type dhcpdScope struct {
	options site.DHCPOptionsSpec
	router  string
	// group is what the enclosing groups set: their hosts' own options (a subnet's
	// options are the subnet's, but a group of hosts may boot otherwise).
	group site.DHCPOptionsSpec
}

// scope translates the statements of one scope (the file, a shared network, a
// group), with what its enclosing scopes set. network names the shared network it is
// in; a group's parameters are its hosts' too.
func (d *dhcpdReader) scope(stmts []stmt, outer *dhcpdScope, network string, group bool) error {
	var here dhcpdScope
	for _, s := range stmts { // a scope's parameters apply to all of it, wherever they stand
		if !s.isBlk {
			d.parameter(s, &here)
		}
	}
	sc := dhcpdScope{options: merged(outer.options, here.options), router: cmp.Or(here.router, outer.router), group: outer.group}
	if group {
		sc.group = merged(outer.group, here.options)
	}
	count := 0
	for _, s := range stmts {
		if !s.isBlk {
			continue
		}
		switch s.arg(0) {
		case "subnet", "subnet6":
			count++
			name := network
			if network != "" && count > 1 {
				name = fmt.Sprintf("%s-%d", network, count)
			}
			if err := d.subnet(s, &sc, name); err != nil {
				return err
			}
		case "shared-network", "group":
			name := network
			if s.arg(0) == "shared-network" {
				name = strings.Trim(s.arg(1), `"`)
			}
			if err := d.scope(s.block, &sc, name, s.arg(0) == "group"); err != nil {
				return err
			}
		case "host":
			d.host(s, &sc)
		default:
			d.b.notef(s.Pos, "%s { … }: not translated (infrad has no counterpart)", s.String())
		}
	}
	return nil
}

// parameter translates one statement of a scope into sc, or notes it.
func (d *dhcpdReader) parameter(s stmt, sc *dhcpdScope) {
	b := d.b
	switch s.arg(0) {
	case "option":
		d.option(s, sc)
	case "next-server":
		sc.options.NextServer = s.arg(1)
	case "filename":
		sc.options.BootFile = strings.Trim(s.arg(1), `"`)
	case "default-lease-time":
		if n, err := strconv.Atoi(s.arg(1)); err == nil && b.s.LeaseTime == "" {
			b.s.LeaseTime = duration(time.Duration(n) * time.Second)
		} else if err == nil && b.s.LeaseTime != duration(time.Duration(n)*time.Second) {
			b.notef(s.Pos, "default-lease-time %d: infrad has one lease time for the site, %s is kept", n, b.s.LeaseTime)
		}
	case "include":
		b.notef(s.Pos, "include %s: give the included file to the import too", s.arg(1))
	case "range", "range6", "prefix6", "hardware", "fixed-address", "fixed-address6", "host-identifier":
		// the subnet's or host's own: read there
	case "authoritative", "not":
		b.notef(s.Pos, "%s: left out (infrad answers as the network's server)", s.String())
	case "max-lease-time", "min-lease-time":
		b.notef(s.Pos, "%s: left out (infrad has one lease time, dhcp.lease_time)", s.String())
	case "ddns-update-style", "ddns-updates", "ddns-domainname", "ddns-rev-domainname", "update-static-leases", "ignore", "allow", "deny":
		b.notef(s.Pos, "%s: left out (infrad's leases name themselves in its own DNS; it serves every client)", s.String())
	default:
		b.notef(s.Pos, "%s: not translated (infrad has no counterpart)", s.String())
	}
}

// option translates an option statement into sc.
func (d *dhcpdReader) option(s stmt, sc *dhcpdScope) {
	v := s.values(2)
	switch s.arg(1) {
	case "routers":
		if len(v) > 0 {
			sc.router = v[0]
		}
	case "domain-name-servers", "dhcp6.name-servers":
		sc.options.DNS = v
	case "ntp-servers", "dhcp6.sntp-servers":
		sc.options.NTP = v
	case "domain-search", "dhcp6.domain-search":
		sc.options.Search = v
	case "domain-name":
		if len(v) > 0 && d.b.s.Domain == "" {
			d.b.s.Domain = v[0]
		}
	case "interface-mtu":
		if len(v) > 0 {
			sc.options.MTU = atoi(v[0])
		}
	case "tftp-server-name":
		if len(v) > 0 {
			sc.options.NextServer = v[0]
		}
	case "bootfile-name":
		if len(v) > 0 {
			sc.options.BootFile = v[0]
		}
	case "host-name", "subnet-mask", "broadcast-address":
		// the host's name and the subnet's shape: read with them
	default:
		d.b.notef(s.Pos, "%s: not translated (infrad's DHCP options are dns, ntp, domain_search, mtu, next_server, boot_file and the gateway)", s.String())
	}
}

// subnet translates a subnet or subnet6 block.
func (d *dhcpdReader) subnet(s stmt, outer *dhcpdScope, name string) error {
	var cidr netip.Prefix
	if s.arg(0) == "subnet6" {
		p, err := netip.ParsePrefix(s.arg(1))
		if err != nil {
			return fmt.Errorf("%s: %q is not an IPv6 network", s.Pos, s.arg(1))
		}
		cidr = p.Masked()
	} else {
		a, errA := netip.ParseAddr(s.arg(1))
		m, errM := netip.ParseAddr(s.arg(3))
		if errA != nil || errM != nil || s.arg(2) != "netmask" || !a.Is4() || !m.Is4() || maskBits(m) == 0 {
			return fmt.Errorf("%s: %q is not \"subnet ADDRESS netmask MASK\"", s.Pos, s.String())
		}
		cidr = netip.PrefixFrom(a, maskBits(m)).Masked()
	}
	var here dhcpdScope
	for _, c := range s.block {
		if !c.isBlk {
			d.parameter(c, &here)
		}
	}
	sc := dhcpdScope{options: merged(outer.options, here.options), router: cmp.Or(here.router, outer.router), group: outer.group}
	sn := site.SubnetSpec{Name: subnetName(name, cidr), CIDR: cidr.String()}
	if a, err := netip.ParseAddr(sc.router); err == nil && cidr.Contains(a) {
		sn.Gateway = a.String()
	}
	if cidr.Addr().Is6() {
		sn.DHCP6 = "stateless"
	}
	ranges := func(list []stmt) error {
		for _, c := range list {
			switch c.arg(0) {
			case "range", "range6":
				v := c.values(1)
				if len(v) > 0 && v[0] == "dynamic-bootp" {
					v = v[1:]
				}
				if len(v) == 1 {
					v = append(v, v[0])
				}
				if len(v) == 2 && strings.Contains(v[0], "/") { // range6 PREFIX temporary
					d.b.notef(c.Pos, "%s: not translated (give the range's first and last address)", c.String())
					continue
				}
				if len(v) != 2 {
					return fmt.Errorf("%s: %q is not \"range FIRST LAST\"", c.Pos, c.String())
				}
				sn.Ranges = append(sn.Ranges, site.RangeSpec{Kind: "dhcp", Start: v[0], End: v[1]})
				if cidr.Addr().Is6() {
					sn.DHCP6 = "stateful"
				}
			case "prefix6":
				v := c.values(1)
				if len(v) == 3 && sn.Delegate == nil {
					if first, err := netip.ParseAddr(v[0]); err == nil {
						bits := atoi(strings.TrimPrefix(v[2], "/"))
						last, _ := netip.ParseAddr(v[1])
						block := netip.PrefixFrom(first, commonBits(first, last)).Masked()
						sn.Delegate = &site.DelegationSpec{Prefix: block.String(), Length: bits}
						continue
					}
				}
				d.b.notef(c.Pos, "%s: not translated (a delegation pool is one prefix cut into prefixes of one length)", c.String())
			}
		}
		return nil
	}
	if err := ranges(s.block); err != nil {
		return err
	}
	for _, c := range s.block {
		if !c.isBlk {
			continue
		}
		switch c.arg(0) {
		case "pool", "pool6":
			for _, pc := range c.block {
				if pc.arg(0) != "range" && pc.arg(0) != "range6" && pc.arg(0) != "prefix6" {
					d.b.notef(pc.Pos, "%s (in a pool): left out (infrad's pools serve every client)", pc.String())
				}
			}
			if err := ranges(c.block); err != nil {
				return err
			}
		case "host":
			d.host(c, &sc)
		default:
			d.b.notef(c.Pos, "%s { … }: not translated (infrad has no counterpart)", c.String())
		}
	}
	if anyOptions(sc.options) {
		o := sc.options
		sn.DHCP = &o
	}
	d.b.subnet(s.Pos, sn)
	return nil
}

// host translates a host block: its MAC, fixed address and name.
func (d *dhcpdReader) host(s stmt, sc *dhcpdScope) {
	h := hostItem{HostSpec: site.HostSpec{Name: strings.Trim(s.arg(1), `"`)}}
	hostOpts := dhcpdScope{options: sc.group}
	for _, c := range s.block {
		switch c.arg(0) {
		case "hardware":
			if c.arg(1) == "ethernet" {
				h.MAC = strings.ToLower(c.arg(2))
			} else {
				d.b.notef(c.Pos, "%s: not translated (infrad reserves by Ethernet MAC)", c.String())
			}
		case "fixed-address":
			v := c.values(1)
			if len(v) > 1 {
				d.b.notef(c.Pos, "%s: infrad's host has one address: %s is kept", c.String(), v[0])
			}
			if len(v) > 0 {
				if _, err := netip.ParseAddr(v[0]); err != nil {
					d.b.notef(c.Pos, "fixed-address %s is a name, resolved by dhcpd at its start: give its address", v[0])
				} else {
					h.IP = v[0]
				}
			}
		case "fixed-address6":
			h.IP6 = c.arg(1)
		case "host-identifier":
			if c.arg(1) == "option" && c.arg(2) == "dhcp6.client-id" {
				if duid, err := site.ParseDUID(c.arg(3)); err == nil {
					h.DUID = duid
					continue
				}
			}
			d.b.notef(c.Pos, "%s: not translated (infrad reserves by MAC or by a DHCPv6 client's DUID)", c.String())
		case "option":
			if c.arg(1) == "host-name" {
				if v := c.values(2); len(v) > 0 {
					h.Name = v[0]
				}
				continue
			}
			d.option(c, &hostOpts)
		case "ddns-hostname":
			if v := c.values(1); len(v) > 0 {
				h.Name = v[0]
			}
		default:
			d.parameter(c, &hostOpts)
		}
	}
	if h.IP == "" && h.IP6 != "" {
		h.IP, h.IP6 = h.IP6, ""
	}
	if anyOptions(hostOpts.options) {
		o := hostOpts.options
		h.DHCP = &o
	}
	if site.CheckHostname(h.Name) != nil {
		if first, _, _ := strings.Cut(h.Name, "."); site.CheckHostname(first) == nil && strings.Contains(h.Name, ".") {
			// a full name: finish makes it relative to the domain
		} else if name := site.SanitizeHostname(h.Name); name != "" {
			d.b.notef(s.Pos, "host %q: named %s", h.Name, name)
			h.Name = name
		}
	}
	d.b.host(s.Pos, h)
}

// dhcpdLeases keeps the active leases of a dhcpd.leases file: the last entry of an
// address is its state (the file is a journal).
func (b *builder) dhcpdLeases(stmts []stmt) {
	last := map[string]int{}
	var order []string
	var leases []item[Lease]
	for _, s := range stmts {
		switch s.arg(0) {
		case "lease":
		case "lease6", "ia-na", "ia-ta", "ia-pd":
			b.notef(s.Pos, "%s: DHCPv6 leases are not imported (the client asks again and gets an address)", s.arg(0))
			continue
		default:
			continue // the file's bookkeeping: server-duid, failover state, …
		}
		l := Lease{IP: s.arg(1)}
		active := false
		for _, c := range s.block {
			switch c.arg(0) {
			case "ends":
				l.Expires = dhcpdTime(c, b.opts.Now)
			case "binding":
				active = c.arg(1) == "state" && c.arg(2) == "active"
			case "hardware":
				l.MAC = strings.ToLower(c.arg(2))
			case "client-hostname":
				l.Hostname = strings.Trim(c.arg(1), `"`)
			}
		}
		if _, seen := last[l.IP]; !seen {
			order = append(order, l.IP)
		}
		last[l.IP] = len(leases)
		if !active || l.MAC == "" {
			l.Expires = time.Time{} // freed, expired, abandoned: not kept
		}
		leases = append(leases, item[Lease]{s.Pos, l})
	}
	for _, ip := range order {
		l := leases[last[ip]]
		b.lease(l.Pos, l.v)
	}
}

// dhcpdTime reads "ends W YYYY/MM/DD HH:MM:SS;" (UTC), "ends epoch N;" or "ends never;".
func dhcpdTime(s stmt, now time.Time) time.Time {
	switch {
	case s.arg(1) == "never":
		return now.AddDate(1, 0, 0)
	case s.arg(1) == "epoch":
		n, _ := strconv.ParseInt(s.arg(2), 10, 64)
		return time.Unix(n, 0).UTC()
	}
	t, err := time.Parse("2006/01/02 15:04:05", s.arg(2)+" "+s.arg(3))
	if err != nil {
		return time.Time{}
	}
	return t
}

// keaLeases keeps the active leases of a Kea memfile (kea-leases4.csv): the last row
// of an address is its state; state 0 is a lease in use.
func (b *builder) keaLeases(path string, data []byte) error {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, need := range []string{"address", "hwaddr", "expire", "hostname", "state"} {
		if _, ok := col[need]; !ok {
			return fmt.Errorf("%s:1: a Kea lease file's header has %s", path, need)
		}
	}
	last := map[string]int{}
	var order []string
	for i, row := range rows[1:] {
		if len(row) < len(rows[0]) {
			return fmt.Errorf("%s:%d: %d fields, the header has %d", path, i+2, len(row), len(rows[0]))
		}
		if _, seen := last[row[col["address"]]]; !seen {
			order = append(order, row[col["address"]])
		}
		last[row[col["address"]]] = i
	}
	for _, ip := range order {
		i := last[ip]
		row := rows[i+1]
		if row[col["state"]] != "0" {
			continue
		}
		exp, err := strconv.ParseInt(row[col["expire"]], 10, 64)
		if err != nil {
			return fmt.Errorf("%s:%d: expire %q is not a time in seconds", path, i+2, row[col["expire"]])
		}
		b.lease(Pos{path, i + 2}, Lease{IP: ip, MAC: row[col["hwaddr"]], Hostname: strings.TrimSuffix(row[col["hostname"]], "."), Expires: time.Unix(exp, 0).UTC()})
	}
	return nil
}

// commonBits is the length of the prefix a and b share.
func commonBits(a, b netip.Addr) int {
	for bits := a.BitLen(); bits > 0; bits-- {
		if netip.PrefixFrom(a, bits).Masked() == netip.PrefixFrom(b, bits).Masked() {
			return bits
		}
	}
	return 0
}
