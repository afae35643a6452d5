package importer

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/site"
)

// now is the time the lease files' leases are read at.
var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// render is an import as `infrad import` shows it, and the site file it writes.
func render(t *testing.T, s *Site, base string) string {
	t.Helper()
	var b strings.Builder
	for i, h := range s.Hosts {
		fmt.Fprintf(&b, "host %s %s %s %s (%s)\n", h.Name, h.IP, h.IP6, h.MAC, s.From[fmt.Sprintf("hosts[%d]", i)])
	}
	for i, l := range s.Leases {
		fmt.Fprintf(&b, "lease %s %s %q %s (%s)\n", l.IP, l.MAC, l.Hostname, l.Expires.Format(time.RFC3339), s.From[fmt.Sprintf("leases[%d]", i)])
	}
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "? %s\n", n)
	}
	f, err := s.WriteInto([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("---\n")
	b.Write(f.Data)
	// Every import validates: the site file it writes is one infrad takes.
	if _, err := config.Parse("site.yaml", f.Data); err != nil {
		t.Errorf("the import's site file is not valid:\n%v\n%s", err, f.Data)
	}
	return b.String()
}

func TestImportGolden(t *testing.T) {
	netbox := netboxServer(t)
	for _, tc := range []struct {
		name    string
		kind    string
		sources []string
		opts    Options
		base    string // the site file it goes into
	}{
		{"dnsmasq", "dnsmasq", []string{"dnsmasq/dnsmasq.conf", "dnsmasq/ethers", "dnsmasq/dnsmasq.leases"}, Options{}, ""},
		{"dhcpd", "dhcpd", []string{"dhcpd/dhcpd.conf", "dhcpd/dhcpd6.conf", "dhcpd/dhcpd.leases", "kea/kea-leases4.csv"}, Options{}, ""},
		{"kea", "kea", []string{"kea/kea-dhcp4.conf", "kea/kea-dhcp6.conf", "kea/kea-leases4.csv", "kea/kea-leases6.csv"}, Options{}, ""},
		{"zone", "zone", []string{"zone/db.lab.test", "zone/db.0.77.10.in-addr.arpa"},
			Options{Subnets: []netip.Prefix{netip.MustParsePrefix("10.77.0.0/24"), netip.MustParsePrefix("fd00:77::/64")}},
			"subnets:\n  - {name: lab, cidr: 10.77.0.0/24}\n  - {name: lab6, cidr: 'fd00:77::/64'}\n"},
		{"zone-alone", "zone", []string{"lab.test=zone/db.lab.test"}, Options{}, ""},
		// After dhcpd's import: what the site holds is left out, said; the site's TTL
		// is not the zone's.
		{"zone-after-dhcpd", "zone", []string{"zone/db.lab.test", "zone/db.0.77.10.in-addr.arpa"},
			Options{Subnets: []netip.Prefix{netip.MustParsePrefix("10.77.0.0/24")}, TTL: 300,
				Hosts:   []site.HostSpec{{Name: "cp01", IP: "10.77.0.10", MAC: "52:54:00:77:00:10"}, {Name: "cp02", IP: "10.77.0.11"}},
				Records: []site.RecordSpec{{Name: "registry", Type: "CNAME", Value: "cp01"}, {Name: "@", Type: "TXT", Value: `"v=spf1 mx -all"`}}},
			"domain: lab.test\ndns: {ttl: 300}\nsubnets:\n  - {name: lab, cidr: 10.77.0.0/24}\n"},
		{"pihole5", "pihole", []string{"pihole5/setupVars.conf", "pihole5/04-pihole-static-dhcp.conf", "pihole5/custom.list", "pihole5/05-pihole-custom-cname.conf"}, Options{}, ""},
		{"pihole6", "pihole", []string{"pihole6/pihole.toml"}, Options{}, ""},
		{"netbox-api", "netbox", []string{netbox}, Options{Domain: "lab.test", Token: "0123456789abcdef"}, ""},
		{"netbox-csv", "netbox", []string{"netbox/prefixes.csv", "netbox/ip-ranges.csv", "netbox/ip-addresses.csv"}, Options{Domain: "lab.test"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sources := make([]string, len(tc.sources))
			for i, s := range tc.sources {
				if strings.HasPrefix(s, "http") {
					sources[i] = s
					continue
				}
				origin, file, ok := strings.Cut(s, "=")
				if !ok {
					origin, file = "", s
				}
				sources[i] = filepath.Join("testdata", file)
				if ok {
					sources[i] = origin + "=" + sources[i]
				}
			}
			tc.opts.Now = now
			s, err := Read(context.Background(), tc.kind, sources, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.ReplaceAll(render(t, s, tc.base), netbox, "NETBOX")
			testenv.Golden(t, tc.name+".golden", got)
		})
	}
}

// netboxServer serves the recorded answers of NetBox 4.2's API in testdata, and
// checks the token.
func netboxServer(t *testing.T) string {
	t.Helper()
	var srv *httptest.Server
	files := map[string]string{
		"/api/ipam/prefixes/":     "prefixes.json",
		"/api/ipam/ip-ranges/":    "ip-ranges.json",
		"/api/ipam/ip-addresses/": "ip-addresses.json",
		"/api/dcim/interfaces/":   "interfaces.json",
	}
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Token 0123456789abcdef" {
			http.Error(w, `{"detail":"Invalid token"}`, http.StatusForbidden)
			return
		}
		name, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("offset") == "3" {
			name = "ip-addresses-2.json"
		}
		data, err := os.ReadFile(filepath.Join("testdata", "netbox", "api", name))
		if err != nil {
			t.Error(err)
		}
		port := strings.TrimPrefix(srv.URL, "http://127.0.0.1:")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(strings.ReplaceAll(string(data), "PORT", port)))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestNetBoxRefusesAWrongToken(t *testing.T) {
	url := netboxServer(t)
	_, err := Read(context.Background(), "netbox", []string{url}, Options{Token: "wrong"})
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("got %v, want the 403 named", err)
	}
}

// A malformed source is an error that names its place, and nothing is imported.
func TestMalformedSources(t *testing.T) {
	for _, tc := range []struct {
		kind, file, content, want string
	}{
		{"dnsmasq", "dnsmasq.conf", "domain=lab.test\ndhcp-range=10.0.0.x,10.0.0.9\n", "dnsmasq.conf:2: dhcp-range=10.0.0.x,10.0.0.9: \"10.0.0.x\" is not an address"},
		{"dnsmasq", "dnsmasq.conf", "dhcp-host=52:54:00:00:00:01,10.0.0.5,no_such name!\n", "dnsmasq.conf:1: dhcp-host"},
		{"dnsmasq", "dnsmasq.conf", "address=lab.test/10.0.0.1\n", "dnsmasq.conf:1: address=lab.test/10.0.0.1: not /name/address"},
		{"dnsmasq", "dnsmasq.conf", "conf-file=missing.conf\n", "dnsmasq.conf:1: open"},
		{"dnsmasq", "hosts", "10.0.0.1 a\n10.0.0.2\n", "hosts:2: \"10.0.0.2\" is not an address followed by names"},
		{"dhcpd", "dhcpd.conf", "subnet 10.0.0.0 netmask 255.255.255.0 {\n  range 10.0.0.10 10.0.0.20\n}\n", "dhcpd.conf:2: \"range 10.0.0.10 10.0.0.20\" is not ended by \";\""},
		{"dhcpd", "dhcpd.conf", "subnet 10.0.0.0 netmask 255.255.255.0 {\n  range 10.0.0.10 10.0.0.20;\n", "dhcpd.conf:1: the block of \"subnet 10.0.0.0 netmask 255.255.255.0\" does not end"},
		{"dhcpd", "dhcpd.conf", "subnet 10.0.0.0 mask 255.255.255.0 { }\n", "dhcpd.conf:1: \"subnet 10.0.0.0 mask 255.255.255.0\" is not"},
		{"dhcpd", "dhcpd.conf", "option domain-name \"lab.test;\n", "dhcpd.conf:1: a quoted string that does not end"},
		{"dhcpd", "kea-leases4.csv", "address,hwaddr,client_id\n10.0.0.1,52:54:00:00:00:01,\n", "kea-leases4.csv:1: a Kea lease file's header has expire"},
		{"kea", "kea-dhcp4.conf", "{\n\"Dhcp4\": {\n  \"subnet4\": [ { \"subnet\": \"10.0.0.0/24\" } \n}\n}\n", "kea-dhcp4.conf:4: not Kea's JSON"},
		{"kea", "kea-dhcp4.conf", "{ \"Dhcp\": {} }\n", "neither Dhcp4 nor Dhcp6"},
		{"zone", "db.lab.test", "$TTL 300\n@ IN SOA ns. h. 1 2 3 4 5\nwww IN A 10.0.0.300\n", "db.lab.test"},
		{"zone", "db.lab.test", "$TTL 300\nwww IN A 10.0.0.3\n", "a zone file begins with its SOA record"},
		{"pihole", "pihole.toml", "[dns]\nhosts = [\"10.0.0.1\"\n", "pihole.toml:"},
		{"netbox", "ip-addresses.csv", "name,value\na,b\n", "ip-addresses.csv:1: not a NetBox export"},
	} {
		t.Run(tc.kind+"/"+tc.want, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.file)
			os.WriteFile(path, []byte(tc.content), 0o644)
			s, err := Read(context.Background(), tc.kind, []string{path}, Options{Now: now})
			if err == nil || s != nil {
				t.Fatalf("got %v, %v; want an error", s, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to hold %q", err, tc.want)
			}
		})
	}
}

// WriteInto keeps the site file's own keys and comments, adds the import after its
// objects, and Source places a mistake at the import's line.
func TestWriteIntoASiteFile(t *testing.T) {
	base := []byte(`# the lab
domain: lab.test   # ours
dns:
  ttl: 60
hosts:
  - {name: infra, ip: 10.77.0.1}
subnets:
  - {name: lab, cidr: 10.77.0.0/24}
`)
	s, err := Read(context.Background(), "dnsmasq", []string{"testdata/dnsmasq/dnsmasq.conf"}, Options{Now: now, Domain: "lab.test"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.WriteInto(base)
	if err != nil {
		t.Fatal(err)
	}
	out := string(f.Data)
	for _, want := range []string{"# the lab\n", "domain: lab.test # ours\n", "ttl: 60\n", "- {name: infra, ip: 10.77.0.1}\n",
		"- {name: cp01, ip: 10.77.0.10, mac: '52:54:00:77:00:10'} # from testdata/dnsmasq/dnsmasq.conf:24\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the site file lacks %q:\n%s", want, out)
		}
	}
	// The file's subnet lab and the import's are one network: the validator says so,
	// at the import's line; the file's host infra and the import's are one name.
	_, err = config.Parse("site.yaml", f.Data)
	errs, _ := err.(config.Errors)
	var placed []string
	for _, e := range errs {
		if p, ok := s.Source(f, e.Path); ok {
			placed = append(placed, e.Path+" "+p.String())
		}
	}
	got := strings.Join(placed, "\n")
	for _, want := range []string{"subnets[1]", "testdata/dnsmasq/dnsmasq.conf:15", "hosts[5]", "testdata/dnsmasq/lab.hosts:2"} {
		if !strings.Contains(got, want) {
			t.Errorf("the mistakes placed in the import are\n%s\nwant %s among them (all: %v)", got, want, err)
		}
	}
}
