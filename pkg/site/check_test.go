package site_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/infrad/infrad/internal/fixture"
	"github.com/infrad/infrad/pkg/site"
)

func TestProblems(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(s *site.Set)
		path    string
		words   []string // each must appear in the message: both sides of a conflict
	}{
		{"overlapping subnets", func(s *site.Set) {
			s.Subnets = append(s.Subnets, site.Subnet{Name: "lab", CIDR: netip.MustParsePrefix("10.0.40.128/25"), Purpose: site.PurposeNodes})
		}, "subnets[2].cidr", []string{`"lab"`, `"vm"`, "10.0.40.0/24", "10.0.40.128/25"}},
		{"duplicate subnet name", func(s *site.Set) { s.Subnets[1].Name = "vm" }, "subnets[1].name", []string{`"vm"`, "10.0.40.0/24"}},
		{"bad purpose", func(s *site.Set) { s.Subnets[1].Purpose = "storage" }, "subnets[1].purpose", []string{`"storage"`}},
		{"gateway outside", func(s *site.Set) { s.Subnets[0].Gateway = netip.MustParseAddr("10.0.41.1") }, "subnets[0].gateway", []string{"10.0.41.1", `"vm"`}},
		{"gateway is broadcast", func(s *site.Set) { s.Subnets[0].Gateway = netip.MustParseAddr("10.0.40.255") }, "subnets[0].gateway", []string{"broadcast"}},
		{"range outside subnet", func(s *site.Set) { s.Subnets[0].Ranges[0].End = netip.MustParseAddr("10.0.41.10") }, "subnets[0].ranges[0]", []string{"10.0.41.10", `"vm"`}},
		{"range reversed", func(s *site.Set) { s.Subnets[0].Ranges[0].Start = netip.MustParseAddr("10.0.40.200") }, "subnets[0].ranges[0]", []string{"starts after it ends"}},
		{"overlapping ranges", func(s *site.Set) { s.Subnets[0].Ranges[1].End = netip.MustParseAddr("10.0.40.160") }, "subnets[0].ranges[1]", []string{`"metallb"`, "10.0.40.150-10.0.40.199"}},
		{"dhcp range holds gateway", func(s *site.Set) {
			s.Subnets[0].Ranges[0] = site.Range{Kind: site.RangeDHCP, Start: netip.MustParseAddr("10.0.40.1"), End: netip.MustParseAddr("10.0.40.5")}
		}, "subnets[0].ranges[0]", []string{"gateway", "10.0.40.1"}},
		{"reserved range without name", func(s *site.Set) { s.Subnets[0].Ranges[1].Name = "" }, "subnets[0].ranges[1].name", []string{"needs a name"}},
		{"dhcp range in pods subnet", func(s *site.Set) {
			s.Subnets[1].Ranges = []site.Range{{Kind: site.RangeDHCP, Start: netip.MustParseAddr("10.244.0.10"), End: netip.MustParseAddr("10.244.0.20")}}
		}, "subnets[1].ranges[0].kind", []string{`"pods"`}},
		{"host outside every subnet", func(s *site.Set) { s.Hosts[1].IP = netip.MustParseAddr("192.168.1.5") }, "hosts[1].ip", []string{"192.168.1.5", "outside every subnet"}},
		{"host in pods subnet", func(s *site.Set) { s.Hosts[1].IP = netip.MustParseAddr("10.244.3.3") }, "hosts[1].ip", []string{`"pods"`}},
		{"host on gateway", func(s *site.Set) { s.Hosts[1].IP = netip.MustParseAddr("10.0.40.1") }, "hosts[1].ip", []string{"gateway", `"vm"`, `"cp02"`}},
		{"host on network address", func(s *site.Set) { s.Hosts[1].IP = netip.MustParseAddr("10.0.40.0") }, "hosts[1].ip", []string{"network address"}},
		{"host in reserved range", func(s *site.Set) { s.Hosts[1].IP = netip.MustParseAddr("10.0.40.105") }, "hosts[1].ip", []string{`reserved range "metallb"`, `"cp02"`}},
		{"duplicate host IP", func(s *site.Set) { s.Hosts[1].IP = s.Hosts[0].IP }, "hosts[1].ip", []string{"10.0.40.10", `"cp01"`}},
		{"duplicate host MAC", func(s *site.Set) { s.Hosts[1].MAC = s.Hosts[0].MAC }, "hosts[1].mac", []string{"52:54:00:00:40:10", `"cp01"`}},
		{"multicast MAC", func(s *site.Set) { s.Hosts[1].MAC = fixture.MAC(t, "01:00:5e:00:00:01") }, "hosts[1].mac", []string{"multicast"}},
		{"duplicate host name", func(s *site.Set) { s.Hosts[1].Name = "cp01" }, "hosts[1].name", []string{`"cp01"`, "10.0.40.10"}},
		{"bad host name", func(s *site.Set) { s.Hosts[1].Name = "cp_02" }, "hosts[1].name", []string{`"cp_02"`}},
		{"record outside zones", func(s *site.Set) { s.Records[0].Name = "api.example.org." }, "records[0].name", []string{"api.example.org.", "k8s.example.com."}},
		{"record at a host's name", func(s *site.Set) { s.Records[0].Name = "cp02.k8s.example.com." }, "records[0]", []string{`"cp02"`}},
		{"CNAME beside other data", func(s *site.Set) {
			s.Records = append(s.Records, site.Record{Name: "registry.k8s.example.com.", Type: "TXT", Value: `"x"`})
		}, "records[2]", []string{"CNAME", "cp01.k8s.example.com."}},
	}
	t.Run("base is consistent", func(t *testing.T) {
		s := fixture.Site(t)
		if got := s.Problems(); len(got) != 0 {
			t.Fatalf("got %v, want no problems", got)
		}
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := fixture.Site(t)
			tc.breakIt(&s)
			got := s.Problems()
			if len(got) != 1 {
				t.Fatalf("got %d problems %v, want 1 at %s", len(got), got, tc.path)
			}
			if got[0].Path() != tc.path {
				t.Errorf("got path %q, want %q (%s)", got[0].Path(), tc.path, got[0].Message)
			}
			for _, w := range tc.words {
				if !strings.Contains(got[0].Message, w) {
					t.Errorf("message %q does not name %s", got[0].Message, w)
				}
			}
		})
	}
}

func TestReverseAddr(t *testing.T) {
	tests := []struct {
		name site.Name
		want string // "" when not a reverse name
	}{
		{"10.40.0.10.in-addr.arpa.", "10.0.40.10"},
		{"40.0.10.in-addr.arpa.", ""},
		{"010.40.0.10.in-addr.arpa.", ""},
		{"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa.", "4321:0:1:2:3:4:567:89ab"},
		{"cp01.k8s.example.com.", ""},
	}
	for _, tc := range tests {
		got, ok := site.ReverseAddr(tc.name)
		if tc.want == "" {
			if ok {
				t.Errorf("ReverseAddr(%s): got %s, want not a reverse name", tc.name, got)
			}
			continue
		}
		if !ok || got.String() != tc.want {
			t.Errorf("ReverseAddr(%s): got %s %v, want %s", tc.name, got, ok, tc.want)
		}
	}
}

func TestParseRecord(t *testing.T) {
	origin := site.Name("k8s.example.com.")
	tests := []struct {
		typ, value string
		want       string // canonical value, or "" for an error
	}{
		{"A", "10.0.40.100", "10.0.40.100"},
		{"A", "10.0.40", ""},
		{"AAAA", "fd00::1", "fd00::1"},
		{"cname", "bastion", "bastion.k8s.example.com."},
		{"CNAME", "grafana.example.com.", "grafana.example.com."},
		{"SRV", "0 10 2380 cp01", "0 10 2380 cp01.k8s.example.com."},
		{"SRV", "0 10 port cp01", ""},
		{"MX", "10 mail", "10 mail.k8s.example.com."},
		{"TXT", `v=spf1 "quoted" -all`, `"v=spf1 \"quoted\" -all"`},
		{"PTR", "cp01", "cp01.k8s.example.com."},
		{"NS", "ns1", ""},
		{"A", "1.2.3.4\nevil IN A 5.6.7.8", ""},
	}
	for _, tc := range tests {
		got, err := site.ParseRecord("x.k8s.example.com.", tc.typ, tc.value, nil, origin)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s %q: got %q, want an error", tc.typ, tc.value, got.Value)
			}
			continue
		}
		if err != nil || got.Value != tc.want {
			t.Errorf("%s %q: got %q, %v; want %q", tc.typ, tc.value, got.Value, err, tc.want)
		}
	}
}
