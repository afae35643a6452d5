package export

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/importer"
	"github.com/infrad/infrad/pkg/site"
)

// siteOf is what an import of the sources makes, as a running infrad would export it.
func siteOf(t *testing.T, kind string, sources ...string) Site {
	t.Helper()
	s, err := importer.Read(context.Background(), kind, sources, importer.Options{Now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.WriteInto(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse("site.yaml", f.Data)
	if err != nil {
		t.Fatal(err)
	}
	out := Site{Domain: strings.TrimSuffix(string(c.Domain), "."), Subnets: c.Subnets, Hosts: c.Hosts, Records: c.DNS.Records,
		TTL: c.DNS.TTL, LeaseTime: c.DHCP.LeaseTime, Server: "10.77.0.1"}
	for _, fw := range c.DNS.Forwarders {
		out.Forwarders = append(out.Forwarders, fw.String())
	}
	return out
}

// summary is what a round trip must keep of a site: its networks, pools, gateways
// and options, its hosts' names, addresses and MACs, and its records.
func summary(s Site) []string {
	var out []string
	for _, sn := range s.Subnets {
		line := fmt.Sprintf("subnet %s gw %s", sn.CIDR, sn.Gateway)
		for _, r := range sn.Ranges {
			line += fmt.Sprintf(" %s %s-%s", r.Kind, r.Start, r.End)
		}
		if sn.DHCP != nil {
			line += fmt.Sprintf(" %+v", *sn.DHCP)
		}
		out = append(out, line)
	}
	// A name's address is a host's (with its PTR) or a record's: dnsmasq's host-record
	// is both, so the two are one here.
	for _, h := range s.Hosts {
		fqdn := site.HostFQDN(h.Name, site.Name(s.Domain+"."))
		out = append(out, fmt.Sprintf("name %s A %s", fqdn, h.IP))
		if h.IP6.IsValid() {
			out = append(out, fmt.Sprintf("name %s AAAA %s", fqdn, h.IP6))
		}
		if !h.MAC.IsZero() || h.DHCP != nil {
			line := fmt.Sprintf("reserved %s %s for %s", fqdn, h.IP, h.MAC)
			if h.DHCP != nil {
				line += fmt.Sprintf(" %+v", *h.DHCP)
			}
			out = append(out, line)
		}
	}
	for _, r := range s.Records {
		kind := "record"
		if r.Type == "A" || r.Type == "AAAA" {
			kind = "name"
		}
		out = append(out, fmt.Sprintf("%s %s %s %s", kind, r.Name, r.Type, r.Value))
	}
	out = append(out, fmt.Sprintf("domain %s, forwarders %v, lease time %s", s.Domain, s.Forwarders, s.LeaseTime))
	slices.Sort(out)
	return out
}

// TestTheWayBack: a site imported from dnsmasq (or dhcpd), exported as dnsmasq's (or
// dhcpd's) configuration and imported again, is the same site.
func TestTheWayBack(t *testing.T) {
	data := "../importer/testdata/"
	for _, tc := range []struct {
		kind    string
		sources []string
		drop    func(string) bool // what the format does not carry
	}{
		{"dnsmasq", []string{data + "dnsmasq/dnsmasq.conf"}, func(string) bool { return false }},
		// dhcpd carries no forwarders.
		{"dhcpd", []string{data + "dhcpd/dhcpd.conf"}, func(l string) bool { return strings.HasPrefix(l, "domain ") }},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			first := siteOf(t, tc.kind, tc.sources...)
			out, err := Render(tc.kind, first)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), tc.kind+".conf")
			os.WriteFile(path, []byte(out), 0o644)
			second := siteOf(t, tc.kind, path)
			want, got := slices.DeleteFunc(summary(first), tc.drop), slices.DeleteFunc(summary(second), tc.drop)
			if !slices.Equal(got, want) {
				t.Errorf("imported, exported and imported again:\n%s\nwant\n%s\nthe export:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), out)
			}
		})
	}
}
