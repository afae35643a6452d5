package importer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/infrad/infrad/pkg/site"
)

// pihole reads Pi-hole's files: v6's pihole.toml; v5's setupVars.conf (the DHCP
// range), its dnsmasq files (04-pihole-static-dhcp.conf, 05-pihole-custom-cname.conf,
// custom.list: local DNS, a hosts file) as dnsmasq's are read.
func (b *builder) pihole(files []string) error {
	d := &dnsmasqReader{b: b, seen: map[string]bool{}}
	for _, f := range files {
		data, err := readSource(f)
		if err != nil {
			return err
		}
		switch base := filepath.Base(f); {
		case strings.HasSuffix(base, ".toml"):
			err = b.piholeTOML(f, data)
		case base == "setupVars.conf":
			err = b.setupVars(f, data, d)
		default: // dnsmasq's files: custom.list is a hosts file
			err = d.source(f, data)
		}
		if err != nil {
			return err
		}
	}
	d.done()
	return nil
}

// setupVars reads Pi-hole v5's setupVars.conf: the DHCP range, router and lease time,
// the domain and the upstream servers.
func (b *builder) setupVars(path string, data []byte, d *dnsmasqReader) error {
	vars := map[string]string{}
	at := map[string]Pos{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	read := map[string]bool{"PIHOLE_DOMAIN": true, "DHCP_ACTIVE": true, "DHCP_START": true, "DHCP_END": true, "DHCP_ROUTER": true, "DHCP_LEASETIME": true}
	for n := 1; sc.Scan(); n++ {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		vars[k], at[k] = strings.Trim(v, `"'`), Pos{path, n}
		if !read[k] && !strings.HasPrefix(k, "PIHOLE_DNS_") {
			b.notef(at[k], "%s: not translated (a setting of Pi-hole's own)", k)
		}
	}
	for _, k := range []string{"PIHOLE_DNS_1", "PIHOLE_DNS_2", "PIHOLE_DNS_3", "PIHOLE_DNS_4"} {
		if v := vars[k]; v != "" {
			v, _, _ = strings.Cut(v, "#") // Pi-hole writes a port as ADDRESS#PORT
			b.s.Forwarders = append(b.s.Forwarders, v)
		}
	}
	if vars["PIHOLE_DOMAIN"] != "" {
		b.s.Domain = vars["PIHOLE_DOMAIN"]
	}
	if vars["DHCP_ACTIVE"] != "true" {
		if vars["DHCP_START"] != "" {
			b.notef(at["DHCP_START"], "Pi-hole's DHCP server is off: its range is left out")
		}
		return nil
	}
	r := []string{vars["DHCP_START"], vars["DHCP_END"]}
	if h := vars["DHCP_LEASETIME"]; h != "" && h != "0" {
		r = append(r, h+"h")
	}
	if err := d.dhcpRange(at["DHCP_START"], strings.Join(r, ",")); err != nil {
		return err
	}
	d.all.router = vars["DHCP_ROUTER"]
	return nil
}

// piholeTOML reads Pi-hole v6's pihole.toml: dns.upstreams, dns.hosts,
// dns.cnameRecords, dns.domain and the dhcp table.
func (b *builder) piholeTOML(path string, data []byte) error {
	var conf struct {
		DNS struct {
			Upstreams    []string       `toml:"upstreams"`
			Hosts        []string       `toml:"hosts"`
			CNAMERecords []string       `toml:"cnameRecords"`
			Domain       toml.Primitive `toml:"domain"`
		} `toml:"dns"`
		DHCP struct {
			Active    bool     `toml:"active"`
			Start     string   `toml:"start"`
			End       string   `toml:"end"`
			Router    string   `toml:"router"`
			Netmask   string   `toml:"netmask"`
			LeaseTime string   `toml:"leaseTime"`
			Hosts     []string `toml:"hosts"`
		} `toml:"dhcp"`
	}
	md, err := toml.Decode(string(data), &conf)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("%s:%d: %s", path, pe.Position.Line, pe.Message)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	// Where a value stands: the line that holds it (the decoder does not tell).
	lines := strings.Split(string(data), "\n")
	pos := func(v string) Pos {
		for i, l := range lines {
			if strings.Contains(l, `"`+v+`"`) {
				return Pos{path, i + 1}
			}
		}
		return Pos{path, 0}
	}
	// What else the file sets: the settings a user changed (Pi-hole marks them) each
	// with its line, the defaults counted.
	defaults := 0
	for _, key := range md.Undecoded() {
		if key.String() == "dns.domain.local" || key.String() == "dns.domain.name" {
			continue
		}
		p := Pos{path, 0}
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), key[len(key)-1]+" =") {
				p.Line = i + 1
				break
			}
		}
		if p.Line > 0 && strings.Contains(lines[p.Line-1], "CHANGED") {
			b.notef(p, "%s: not translated (a setting of Pi-hole's own)", key)
		} else {
			defaults++
		}
	}
	if defaults > 0 {
		b.notef(Pos{path, 0}, "%d more settings at Pi-hole's defaults: not translated", defaults)
	}
	// dns.domain is a string in Pi-hole 6.0, a table {name, local} after it.
	var domain string
	if md.IsDefined("dns", "domain", "name") {
		var t struct {
			Name string `toml:"name"`
		}
		if err := md.PrimitiveDecode(conf.DNS.Domain, &t); err == nil {
			domain = t.Name
		}
	} else if md.IsDefined("dns", "domain") {
		_ = md.PrimitiveDecode(conf.DNS.Domain, &domain)
	}
	if domain != "" {
		b.s.Domain = domain
	}
	for _, u := range conf.DNS.Upstreams {
		a, _, _ := strings.Cut(u, "#")
		if _, err := netip.ParseAddr(a); err != nil {
			b.notef(pos(u), "dns.upstreams %q: not an address (infrad forwards to addresses): left out", u)
			continue
		}
		b.s.Forwarders = append(b.s.Forwarders, a)
	}
	for _, h := range conf.DNS.Hosts {
		if err := b.hostLine(pos(h), h); err != nil {
			return err
		}
	}
	for _, c := range conf.DNS.CNAMERecords {
		f := splitList(c)
		if len(f) < 2 {
			return fmt.Errorf("%s: dns.cnameRecords %q is not ALIAS,TARGET", pos(c), c)
		}
		b.record(pos(c), site.RecordSpec{Name: f[0], Type: "CNAME", Value: f[1]})
	}
	d := &dnsmasqReader{b: b, seen: map[string]bool{}}
	for _, h := range conf.DHCP.Hosts {
		if err := d.dhcpHost(pos(h), h); err != nil {
			return err
		}
	}
	if conf.DHCP.Active && conf.DHCP.Start != "" {
		r := []string{conf.DHCP.Start, conf.DHCP.End}
		if conf.DHCP.Netmask != "" && conf.DHCP.Netmask != "0.0.0.0" {
			r = append(r, conf.DHCP.Netmask)
		}
		if lt, err := time.ParseDuration(conf.DHCP.LeaseTime); err == nil {
			r = append(r, fmt.Sprint(int(lt.Seconds())))
		}
		if err := d.dhcpRange(pos(conf.DHCP.Start), strings.Join(r, ",")); err != nil {
			return err
		}
		d.all.router = conf.DHCP.Router
	} else if conf.DHCP.Start != "" {
		b.notef(pos(conf.DHCP.Start), "Pi-hole's DHCP server is off (dhcp.active): its range is left out")
	}
	d.done()
	return nil
}
