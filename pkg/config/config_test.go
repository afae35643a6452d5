package config

import (
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/testenv"
)

// TestEveryMistake parses a file holding one of each mistake and compares every error
// line, with its key path and line number, to the golden file.
func TestEveryMistake(t *testing.T) {
	path := filepath.Join("testdata", "every-mistake.yaml")
	_, err := Load(path)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want Errors", err)
	}
	got := err.Error() + "\n"
	testenv.Golden(t, "every-mistake.golden", got)
	// The golden file is the contract; these make its intent explicit.
	for _, path := range []string{
		"domain", "api.listen", "dns.ttl", "dns.forwarders[0]", "dns.tsig_keys[0].algorithm",
		"dns.tsig_keys[0].secret", "ntp.local_stratum", "dhcp.leas_time", "subnets[0].gateway",
		"subnets[0].ranges[1]", "subnets[0].ranges[2]", "subnets[1].cidr", "subnets[2].cidr",
		"subnets[3].cidr", "hosts[1].ip", "hosts[2].mac", "hosts[3].name", "hosts[4].mac",
		"hosts[5].ip", "hosts[6].ip", "hosts[7].name", "hosts[8].colour", "hosts[9].name",
	} {
		if !strings.Contains(got, ": "+path+": ") {
			t.Errorf("no error at %s", path)
		}
	}
}

func TestErrorPlaces(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key names its line and the known keys", "domain: a.example\nsubnet: []\n",
			`x.yaml:2: subnet: unknown key "subnet" (known keys here: domain, data_dir, api, dns, ntp, dhcp, ca, boot, ssh, subnets, hosts, kubernetes, metallb, cluster, max_deletes, change_log)`},
		{"missing domain", "data_dir: /tmp\n", `x.yaml: domain: the site needs a domain, such as k8s.example.com`},
		{"list where a mapping belongs", "domain: a.example\ndns: [a, b]\n", `x.yaml:2: dns: want a mapping of keys, got a list`},
		{"mapping where a value belongs", "domain: {a: b}\n", `x.yaml:1: domain: want a single value, got a mapping`},
		{"syntax error", "domain: a.example\n  bad: indent\n", `x.yaml:2: mapping values are not allowed in this context`},
		{"empty file", "", `x.yaml: the site file is empty`},
		{"record outside zones", "domain: a.example\ndns:\n  records:\n    - {name: x.b.example., type: A, value: 10.0.0.1}\n",
			`x.yaml:4: dns.records[0].name: x.b.example. is outside the site's zones (a.example. and the reverse zones of its subnets)`},
		{"record with a bad SRV value", "domain: a.example\ndns:\n  records:\n    - {name: _x._tcp, type: SRV, value: \"0 10 port cp01\"}\n",
			`x.yaml:4: dns.records[0].value: "0 10 port cp01" is not a valid SRV value: bad SRV Port`},
		{"duration", "domain: a.example\nca: {cert_lifetime: 3 months}\n", `x.yaml:2: ca.cert_lifetime: "3 months" is not a duration, such as 12h, 90m or 90d`},
		{"a key's transfer not a boolean", "domain: a.example\ndns:\n  tsig_keys:\n    - {name: k, algorithm: hmac-sha256, secret: c2VjcmV0, transfer: sometimes}\n",
			`x.yaml:4: dns.tsig_keys[0].transfer: want true or false, got "sometimes"`},
		{"a transfer source not an address", "domain: a.example\ndns: {transfer_from: [somewhere]}\n",
			`x.yaml:2: dns.transfer_from[0]: "somewhere" is not a CIDR, such as 10.0.40.0/24`},
		{"a kubernetes endpoint without a port", "domain: a.example\nkubernetes: {endpoint: lb}\n",
			`x.yaml:2: kubernetes.endpoint: "lb" is not a name with a port, such as api:6443 or lb.a.example.:6443`},
		{"a kubernetes endpoint outside the zones", "domain: a.example\nkubernetes: {endpoint: \"lb.b.example.:6443\"}\n",
			`x.yaml:2: kubernetes.endpoint: lb.b.example. is outside the site's zones: the endpoint is a name infrad serves`},
		{"BGP without the router's AS", "domain: a.example\nmetallb:\n  bgp: {my_asn: 64512, peer_address: 10.0.0.1}\n",
			`x.yaml:3: metallb.bgp.peer_asn: BGP needs it: the AS number, such as 64512`},
		{"an absolute host name outside the zones", "domain: a.example\nsubnets: [{name: n, cidr: 10.0.0.0/24}]\nhosts:\n  - {name: web.b.example., ip: 10.0.0.5}\n",
			`x.yaml:4: hosts[0].name: web.b.example. is outside the site's zones (a.example. and dns.zones): a host's name is one DNS serves`},
		{"a change log kept for no days", "domain: a.example\nchange_log: {days: 0}\n",
			`x.yaml:2: change_log.days: 0: keep the change log from 1 to 3650 days (default 90)`},
		{"no DNS listener", "domain: a.example\ndns: {listen: []}\n", `x.yaml:2: dns.listen: DNS needs at least one address to listen on (leave the key out for 0.0.0.0:53)`},
		{"a host naming no profile of the site", "domain: a.example\nboot:\n  profiles: [{name: debian, kernel: d/vmlinuz}]\nsubnets: [{name: n, cidr: 10.0.0.0/24}]\nhosts:\n  - {name: a, ip: 10.0.0.5, mac: \"52:54:00:00:00:05\", boot: debain}\n",
			`x.yaml:6: hosts[0].boot: no boot profile "debain": boot.profiles has debian`},
		{"a subnet naming a profile of a site with none", "domain: a.example\nsubnets: [{name: n, cidr: 10.0.0.0/24, boot: debian}]\n",
			`x.yaml:2: subnets[0].boot: no boot profile "debian": the site has none (boot.profiles)`},
		{"a subnet may not say none", "domain: a.example\nboot:\n  profiles: [{name: debian, kernel: d/vmlinuz}]\nsubnets: [{name: n, cidr: 10.0.0.0/24, boot: none}]\n",
			`x.yaml:4: subnets[0].boot: no boot profile "none": boot.profiles has debian`},
		{"a host without a MAC booting", "domain: a.example\nboot:\n  profiles: [{name: debian, kernel: d/vmlinuz}]\nsubnets: [{name: n, cidr: 10.0.0.0/24}]\nhosts:\n  - {name: a, ip: 10.0.0.5, boot: debian}\n",
			`x.yaml:6: hosts[0].boot: host "a" has no MAC, so no machine is known to boot as it`},
		{"a kernel outside the boot root", "domain: a.example\nboot:\n  profiles:\n    - {name: debian, kernel: ../etc/shadow}\n",
			`x.yaml:4: boot.profiles[0].kernel: "../etc/shadow" is neither a file below boot.root (a clean relative path, such as debian/vmlinuz) nor an http(s) URL`},
		{"a profile of two kinds", "domain: a.example\nboot:\n  profiles:\n    - {name: x, kernel: k, url: \"http://h/x.efi\"}\n",
			`x.yaml:4: boot.profiles[0].kernel: a profile needs exactly one of kernel, ipxe, url and pi`},
		{"a command line naming what a host has not", "domain: a.example\nboot:\n  profiles:\n    - {name: x, kernel: k, cmdline: \"hostname={{.Hostname}}\"}\n",
			`x.yaml:4: boot.profiles[0].cmdline: the template names what a host does not have: template: :1:11: executing "" at <.Hostname>: can't evaluate field Hostname in type site.BootVars`},
		{"a DHCP mode that is not one", "domain: a.example\ndhcp: {mode: relay}\n",
			`x.yaml:2: dhcp.mode: "relay" is not a mode: server (hand out addresses) or proxy (answer network boot clients only, beside another DHCP server)`},
		{"an iPXE script without its first line", "domain: a.example\nboot:\n  profiles:\n    - {name: x, ipxe: shell}\n",
			`x.yaml:4: boot.profiles[0].ipxe: an iPXE script starts with "#!ipxe"`},
		{"a profile defined twice", "domain: a.example\nboot:\n  profiles:\n    - {name: x, ipxe: \"#!ipxe\"}\n    - {name: x, ipxe: \"#!ipxe\"}\n",
			`x.yaml:5: boot.profiles[1].name: profile "x" is defined twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tc.yaml))
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v, want %s", err, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	s, err := Parse("x.yaml", []byte("domain: K8s.Example.com\nsubnets: [{name: vm, cidr: 10.0.40.0/24}]\nca: {cert_lifetime: 30d}\n"))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"domain", string(s.Domain), "k8s.example.com."},
		{"data_dir", s.DataDir, DefaultDataDir},
		{"api.listen", s.API.Listen.String(), DefaultAPIListen},
		{"dns.listen", s.DNS.Listen[0].String(), DefaultDNSListen},
		{"dns.ttl", s.DNS.TTL, uint32(DefaultTTL)},
		{"dns.recursion_allow", len(s.DNS.RecursionAllow), 3},
		{"ntp.listen", s.NTP.Listen[0].String(), DefaultNTPListen},
		{"dhcp.lease_time", s.DHCP.LeaseTime, DefaultLeaseTime},
		{"ca.listen", s.CA.Listen.String(), DefaultCAListen},
		{"ca.name", string(s.CA.Name), "ca.k8s.example.com."},
		{"ca.cert_lifetime", s.CA.CertLifetime, 30 * 24 * time.Hour},
		{"subnets[0].purpose", string(s.Subnets[0].Purpose), "nodes"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if got := s.DNS.RecursionAllow[2]; got != netip.MustParsePrefix("10.0.40.0/24") {
		t.Errorf("recursion_allow[2]: got %s, want the site's subnet", got)
	}
}

func TestDemoIsValid(t *testing.T) {
	s := Demo()
	if s.Domain != "lab.internal." || s.API.Listen.String() != "127.0.0.1:8080" || s.DataDir != "./data" {
		t.Errorf("got domain %s, api %s, data %s; want the demo site of DESIGN.md", s.Domain, s.API.Listen, s.DataDir)
	}
	if len(s.DHCP.Interfaces) != 0 {
		t.Errorf("got DHCP interfaces %v, want none (idle)", s.DHCP.Interfaces)
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // key paths
	}{
		{"loopback listeners", "domain: a.example\ndns: {listen: [\"127.0.0.1:53\"]}\n", nil},
		{"a wildcard DNS listener with no advertise", "domain: a.example\n", []string{"dns.advertise"}},
		{"DHCP with NTP on every address", "domain: a.example\ndns: {advertise: 10.0.0.1}\ndhcp: {interfaces: [eth0]}\n", nil},
		{"DHCP with NTP on the advertised address", "domain: a.example\ndns: {advertise: 10.0.0.1}\nntp: {listen: [\"10.0.0.1:123\"]}\ndhcp: {interfaces: [eth0]}\n", nil},
		{"DHCP with NTP on another port", "domain: a.example\ndns: {advertise: 10.0.0.1}\nntp: {listen: [\"0.0.0.0:1123\"]}\ndhcp: {interfaces: [eth0]}\n", []string{"ntp.listen"}},
		{"DHCP with DNS and NTP on loopback only", "domain: a.example\ndns: {listen: [\"127.0.0.1:53\"]}\nntp: {listen: [\"127.0.0.1:123\"]}\ndhcp: {interfaces: [eth0]}\n", []string{"dns.advertise"}},
		{"DHCP with NTP on loopback only", "domain: a.example\ndns: {advertise: 10.0.0.1}\nntp: {listen: [\"127.0.0.1:123\"]}\ndhcp: {interfaces: [eth0]}\n", []string{"ntp.listen"}},
		{"a cluster on wildcard listeners: its nodes are the name servers", "domain: a.example\nsubnets: [{name: vm, cidr: 10.0.0.0/24}]\ncluster:\n  nodes:\n    - {name: infra1, address: 10.0.0.2}\n    - {name: infra2, address: 10.0.0.3}\n    - {name: infra3, address: 10.0.0.4, witness: true}\n", nil},
		{"the CA's name outside the zones", "domain: a.example\ndns: {advertise: 10.0.0.1}\nca: {name: ca.b.example}\n", []string{"ca.name"}},
		{"a host called ns, and no name server's address", "domain: a.example\nsubnets: [{name: vm, cidr: 10.0.0.0/24}]\nhosts: [{name: ns, ip: 10.0.0.5}]\n", []string{"dns.advertise", "hosts[0].name"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			site, err := Parse("x.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range site.Warnings() {
				got = append(got, w.Path)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", site.Warnings(), tc.want)
			}
		})
	}
}

// TestHostCalledNSWithGlue: while infrad answers for ns.<domain> itself (dns.advertise
// is no host's address), a host called ns is a mistake, named with its key path.
func TestHostCalledNSWithGlue(t *testing.T) {
	_, err := Parse("x.yaml", []byte("domain: a.example\ndns: {advertise: 10.0.0.2}\nsubnets: [{name: vm, cidr: 10.0.0.0/24}]\nhosts: [{name: ns, ip: 10.0.0.5}]\n"))
	if err == nil || !strings.Contains(err.Error(), "x.yaml:4: hosts[0].name: ns.a.example. is the zones' name server") {
		t.Errorf("got %v, want hosts[0].name refused", err)
	}
	if _, err := Parse("x.yaml", []byte("domain: a.example\ndns: {advertise: 10.0.0.5}\nsubnets: [{name: vm, cidr: 10.0.0.0/24}]\nhosts: [{name: ns, ip: 10.0.0.5}]\n")); err != nil {
		t.Errorf("a host called ns at the advertised address: %v", err)
	}
}
