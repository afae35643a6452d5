package export

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/infrad/infrad/pkg/site"
)

// The way back: the site as dnsmasq's and ISC dhcpd's configuration, so that a site
// that moved in (infrad import) can move out again, and a test can compare the two.

// dnsmasq writes the site as a dnsmasq.conf: a dhcp-range per subnet with its
// options (tagged with the subnet's name), a dhcp-host per reserved host, a
// host-record per host (A, AAAA and PTR, as infrad derives them) and the records.
func dnsmasq(s Site) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# dnsmasq.conf for %s, from infrad (infrad export dnsmasq)\n", s.Domain)
	fmt.Fprintf(&b, "domain=%s\nlocal=/%s/\n", s.Domain, s.Domain)
	for _, z := range s.Zones {
		fmt.Fprintf(&b, "local=/%s/\n", strings.TrimSuffix(string(z), "."))
	}
	if s.TTL > 0 {
		fmt.Fprintf(&b, "local-ttl=%d\n", s.TTL)
	}
	for _, f := range s.Forwarders {
		if ap, err := netip.ParseAddrPort(f); err == nil {
			f = fmt.Sprintf("%s#%d", ap.Addr(), ap.Port())
		}
		fmt.Fprintf(&b, "server=%s\n", f)
	}
	lease := "12h"
	if s.LeaseTime > 0 {
		lease = fmt.Sprint(int(s.LeaseTime.Seconds()))
	}
	for _, sn := range s.Subnets {
		if sn.Purpose != site.PurposeNodes {
			continue
		}
		fmt.Fprintf(&b, "\n# subnet %s\n", sn.Name)
		mask := maskOf(sn.CIDR)
		ranges := 0
		for _, r := range sn.Ranges {
			switch r.Kind {
			case site.RangeDHCP:
				ranges++
				if sn.CIDR.Addr().Is6() {
					fmt.Fprintf(&b, "dhcp-range=set:%s,%s,%s,%d,%s\n", sn.Name, r.Start, r.End, sn.CIDR.Bits(), lease)
				} else {
					fmt.Fprintf(&b, "dhcp-range=set:%s,%s,%s,%s,%s\n", sn.Name, r.Start, r.End, mask, lease)
				}
			default:
				fmt.Fprintf(&b, "# %s range %s: %s-%s (no dnsmasq counterpart)\n", r.Kind, r.Name, r.Start, r.End)
			}
		}
		if ranges == 0 && sn.CIDR.Addr().Is4() {
			fmt.Fprintf(&b, "dhcp-range=set:%s,%s,static,%s,%s\n", sn.Name, sn.CIDR.Addr(), mask, lease)
		}
		if sn.Gateway.IsValid() {
			fmt.Fprintf(&b, "dhcp-option=tag:%s,option:router,%s\n", sn.Name, sn.Gateway)
		}
		dnsmasqOptions(&b, sn.Name, sn.DHCP)
	}
	b.WriteString("\n# hosts\n")
	for _, h := range s.Hosts {
		fqdn := strings.TrimSuffix(string(site.HostFQDN(h.Name, site.Name(s.Domain+"."))), ".")
		if !h.MAC.IsZero() {
			tag := ""
			if h.DHCP != nil {
				tag = ",set:host-" + strings.ReplaceAll(fqdn, ".", "-")
			}
			fmt.Fprintf(&b, "dhcp-host=%s%s,%s,%s\n", h.MAC, tag, h.IP, strings.Split(fqdn, ".")[0])
			if tag != "" {
				dnsmasqOptions(&b, tag[5:], h.DHCP)
			}
		}
		addrs := h.IP.String()
		if h.IP6.IsValid() {
			addrs += "," + h.IP6.String()
		}
		fmt.Fprintf(&b, "host-record=%s,%s\n", fqdn, addrs)
	}
	if len(s.Records) > 0 {
		b.WriteString("\n# records\n")
	}
	// address=/NAME/ answers NAME and every name under it: a wildcard and the record
	// of its parent name at the same address are one line.
	wildcard := map[string]bool{}
	for _, r := range s.Records {
		if rest, ok := strings.CutPrefix(string(r.Name), "*."); ok && (r.Type == "A" || r.Type == "AAAA") {
			wildcard[rest+" "+r.Value] = true
		}
	}
	for _, r := range s.Records {
		name := strings.TrimSuffix(string(r.Name), ".")
		f := strings.Fields(r.Value)
		target := func(i int) string { return strings.TrimSuffix(f[i], ".") }
		switch {
		case (r.Type == "A" || r.Type == "AAAA") && strings.HasPrefix(name, "*."):
			fmt.Fprintf(&b, "address=/%s/%s\n", name[2:], r.Value)
			if !slices.ContainsFunc(s.Records, func(o site.Record) bool {
				return string(o.Name) == string(r.Name)[2:] && o.Type == r.Type && o.Value == r.Value
			}) {
				fmt.Fprintf(&b, "# (dnsmasq answers %s itself too)\n", name[2:])
			}
		case (r.Type == "A" || r.Type == "AAAA") && wildcard[string(r.Name)+" "+r.Value]:
			// the wildcard's address= line answers it
		case r.Type == "A" || r.Type == "AAAA":
			fmt.Fprintf(&b, "# (dnsmasq serves a PTR for it too)\nhost-record=%s,%s\n", name, r.Value)
		case r.Type == "CNAME":
			fmt.Fprintf(&b, "cname=%s,%s\n", name, target(0))
		case r.Type == "SRV" && len(f) == 4:
			fmt.Fprintf(&b, "srv-host=%s,%s,%s,%s,%s\n", name, target(3), f[2], f[0], f[1])
		case r.Type == "MX" && len(f) == 2:
			fmt.Fprintf(&b, "mx-host=%s,%s,%s\n", name, target(1), f[0])
		case r.Type == "TXT":
			fmt.Fprintf(&b, "txt-record=%s,%s\n", name, strings.Join(txtStrings(r.Value), ","))
		case r.Type == "PTR":
			fmt.Fprintf(&b, "ptr-record=%s,%s\n", name, target(0))
		default:
			fmt.Fprintf(&b, "# %s %s %s: no dnsmasq counterpart\n", name, r.Type, r.Value)
		}
	}
	return b.String()
}

func dnsmasqOptions(b *strings.Builder, tag string, o *site.DHCPOptions) {
	if o == nil {
		return
	}
	if len(o.DNS) > 0 {
		fmt.Fprintf(b, "dhcp-option=tag:%s,option:dns-server,%s\n", tag, site.JoinAddrs(o.DNS))
	}
	if len(o.NTP) > 0 {
		fmt.Fprintf(b, "dhcp-option=tag:%s,option:ntp-server,%s\n", tag, site.JoinAddrs(o.NTP))
	}
	if len(o.Search) > 0 {
		fmt.Fprintf(b, "dhcp-option=tag:%s,option:domain-search,%s\n", tag, strings.ReplaceAll(site.JoinNames(o.Search), " ", ""))
	}
	if o.MTU != 0 {
		fmt.Fprintf(b, "dhcp-option=tag:%s,option:mtu,%d\n", tag, o.MTU)
	}
	if o.BootFile != "" || o.NextServer.IsValid() {
		fmt.Fprintf(b, "dhcp-boot=tag:%s,%s,,%s\n", tag, o.BootFile, or(addrOr(o.NextServer), ""))
	}
}

// dhcpd writes the site's IPv4 subnets and reserved hosts as an ISC dhcpd.conf.
func dhcpd(s Site) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# dhcpd.conf for %s, from infrad (infrad export dhcpd)\n", s.Domain)
	lease := 43200
	if s.LeaseTime > 0 {
		lease = int(s.LeaseTime.Seconds())
	}
	fmt.Fprintf(&b, "option domain-name %q;\ndefault-lease-time %d;\nmax-lease-time %d;\nauthoritative;\n", s.Domain, lease, lease)
	for _, sn := range s.Subnets {
		if sn.Purpose != site.PurposeNodes {
			continue
		}
		if sn.CIDR.Addr().Is6() {
			fmt.Fprintf(&b, "\n# subnet %s (%s) is IPv6: dhcpd -6 takes it in a file of its own\n", sn.Name, sn.CIDR)
			continue
		}
		fmt.Fprintf(&b, "\n# subnet %s\nsubnet %s netmask %s {\n", sn.Name, sn.CIDR.Addr(), maskOf(sn.CIDR))
		for _, r := range sn.Ranges {
			if r.Kind == site.RangeDHCP {
				fmt.Fprintf(&b, "  range %s %s;\n", r.Start, r.End)
			} else {
				fmt.Fprintf(&b, "  # %s range %s: %s-%s\n", r.Kind, r.Name, r.Start, r.End)
			}
		}
		if sn.Gateway.IsValid() {
			fmt.Fprintf(&b, "  option routers %s;\n", sn.Gateway)
		}
		o := site.DHCPOptions{}
		if sn.DHCP != nil {
			o = *sn.DHCP
		}
		if len(o.DNS) == 0 && s.Server != "" { // infrad's own, as infrad tells its clients
			if a, err := netip.ParseAddr(s.Server); err == nil {
				o.DNS = append(o.DNS, a)
			}
		}
		dhcpdOptions(&b, "  ", &o)
		b.WriteString("}\n")
	}
	b.WriteString("\n")
	for _, h := range s.Hosts {
		if h.MAC.IsZero() || !h.IP.Is4() {
			continue
		}
		name := strings.TrimSuffix(strings.TrimSuffix(h.Name, "."), "."+s.Domain)
		fmt.Fprintf(&b, "host %s {\n  hardware ethernet %s;\n  fixed-address %s;\n  option host-name %q;\n", name, h.MAC, h.IP, name)
		dhcpdOptions(&b, "  ", h.DHCP)
		b.WriteString("}\n")
	}
	return b.String()
}

func dhcpdOptions(b *strings.Builder, indent string, o *site.DHCPOptions) {
	if o == nil {
		return
	}
	if len(o.DNS) > 0 {
		fmt.Fprintf(b, "%soption domain-name-servers %s;\n", indent, site.JoinAddrs(o.DNS))
	}
	if len(o.NTP) > 0 {
		fmt.Fprintf(b, "%soption ntp-servers %s;\n", indent, site.JoinAddrs(o.NTP))
	}
	if len(o.Search) > 0 {
		quoted := make([]string, len(o.Search))
		for i, n := range o.Search {
			quoted[i] = fmt.Sprintf("%q", strings.TrimSuffix(string(n), "."))
		}
		fmt.Fprintf(b, "%soption domain-search %s;\n", indent, strings.Join(quoted, ", "))
	}
	if o.MTU != 0 {
		fmt.Fprintf(b, "%soption interface-mtu %d;\n", indent, o.MTU)
	}
	if o.NextServer.IsValid() {
		fmt.Fprintf(b, "%snext-server %s;\n", indent, o.NextServer)
	}
	if o.BootFile != "" {
		fmt.Fprintf(b, "%sfilename %q;\n", indent, o.BootFile)
	}
}

func maskOf(p netip.Prefix) string {
	if !p.Addr().Is4() {
		return ""
	}
	m := ^uint32(0) << (32 - p.Bits())
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}

func addrOr(a netip.Addr) string {
	if a.IsValid() {
		return a.String()
	}
	return ""
}

// txtStrings are a TXT record's strings, each quoted, as its presentation form has them.
func txtStrings(v string) []string {
	var out []string
	for rest := strings.TrimSpace(v); rest != ""; rest = strings.TrimSpace(rest) {
		if rest[0] != '"' {
			f, r, _ := strings.Cut(rest, " ")
			out, rest = append(out, `"`+f+`"`), r
			continue
		}
		i := 1
		for i < len(rest) && rest[i] != '"' {
			if rest[i] == '\\' {
				i++
			}
			i++
		}
		out, rest = append(out, rest[:min(i+1, len(rest))]), rest[min(i+1, len(rest)):]
	}
	return out
}
