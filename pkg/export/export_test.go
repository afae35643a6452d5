package export

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/site"
)

func exampleSite(t *testing.T) Site {
	t.Helper()
	s, err := config.Load("../../deploy/examples/bastion.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return Site{Domain: strings.TrimSuffix(string(s.Domain), "."), Subnets: s.Subnets, Hosts: s.Hosts, Records: s.DNS.Records,
		Cluster:   Cluster{Endpoint: s.Kubernetes.String(), ClusterName: s.Kubernetes.ClusterName, DNSDomain: strings.TrimSuffix(string(s.Kubernetes.DNSDomain), ".")},
		Directory: "https://ca.k8s.corp.example/acme/acme/directory", Server: "10.0.40.2",
		RootPEM: "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n",
		DS:      []string{"k8s.corp.example.\t300\tIN\tDS\t12345 13 2 0A1B2C3D"},
		SSH: &SSH{HostCA: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostCAfake", UserCA: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIUserCAfake",
			KRLURL: "https://10.0.40.2:8080/api/v1/ca/ssh/krl"}}
}

// TestChronyNTS: with NTS on, every server line asks for it, and the root is trusted.
func TestChronyNTS(t *testing.T) {
	s := exampleSite(t)
	s.Others = []string{"10.0.40.3"}
	s.NTS = &NTS{Port: 4460}
	got, _ := Render("chrony", s)
	for _, want := range []string{"server 10.0.40.2 iburst nts\n", "server 10.0.40.3 iburst nts\n", "ntstrustedcerts /etc/chrony/infrad-root.pem\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("the export lacks %q:\n%s", want, got)
		}
	}
	s.NTS.Port = 14460
	if got, _ := Render("chrony", s); !strings.Contains(got, "server 10.0.40.2 iburst nts ntsport 14460\n") {
		t.Errorf("NTS-KE on another port: the export does not say so:\n%s", got)
	}
	// cloud-init: chronyd with NTS, trusting the root ca_certs installs.
	ci, _ := Render("cloud-init", s)
	var doc struct {
		NTP struct {
			Client string `yaml:"ntp_client"`
			Config struct{ Template string }
		}
	}
	if err := yaml.Unmarshal([]byte(ci), &doc); err != nil {
		t.Fatalf("cloud-init with NTS is not YAML: %v\n%s", err, ci)
	}
	if doc.NTP.Client != "chrony" || !strings.Contains(doc.NTP.Config.Template, "server {{ server }} iburst nts ntsport 14460\n") ||
		!strings.HasPrefix(doc.NTP.Config.Template, "## template:jinja\n") {
		t.Errorf("cloud-init with NTS: want chrony's template with nts on each server:\n%s", ci)
	}
	s.DS = nil
	if _, err := Render("ds", s); err == nil || !strings.Contains(err.Error(), "dns.dnssec") {
		t.Errorf("ds of an unsigned site: %v", err)
	}
}

// TestGolden renders every export of the bastion example against its golden file.
func TestGolden(t *testing.T) {
	kinds := make([]string, 0, len(Kinds))
	for k := range Kinds {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			got, err := Render(kind, exampleSite(t))
			if err != nil {
				t.Fatal(err)
			}
			testenv.Golden(t, kind+".golden", got)
		})
	}
}

// TestKubeadmEndpoints: the endpoint may be an A record (a VIP), a host (kube-vip's
// address as a host, a load balancer's box), or a CNAME to one; its names and
// addresses become SANs.
func TestKubeadmEndpoints(t *testing.T) {
	for _, tc := range []struct {
		name, endpoint string
		want           []string // lines the export holds
	}{
		{"an A record", "api.k8s.corp.example:6443", []string{"controlPlaneEndpoint: api.k8s.corp.example:6443", "    - api.k8s.corp.example\n    - 10.0.40.100\n"}},
		{"a CNAME to a host", "lb.k8s.corp.example:8443", []string{"controlPlaneEndpoint: lb.k8s.corp.example:8443", "    - lb.k8s.corp.example\n    - bastion.k8s.corp.example\n    - 10.0.40.2\n"}},
		{"a host", "bastion.k8s.corp.example:6443", []string{"    - bastion.k8s.corp.example\n    - 10.0.40.2\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := exampleSite(t)
			s.Records = append(s.Records, site.Record{Name: "lb.k8s.corp.example.", Type: "CNAME", Value: "bastion.k8s.corp.example."})
			s.Cluster.Endpoint = tc.endpoint
			got, err := Render("kubeadm", s)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.want {
				if !strings.Contains(got, want) {
					t.Errorf("the export lacks %q:\n%s", want, got)
				}
			}
		})
	}
}

func TestMetalLBBGP(t *testing.T) {
	s := exampleSite(t)
	s.BGP = &BGP{MyASN: 64512, PeerASN: 64513, PeerAddress: netip.MustParseAddr("10.0.40.1"), PeerPort: 179}
	got, err := Render("metallb", s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: BGPPeer", "myASN: 64512", "peerASN: 64513", "peerAddress: 10.0.40.1", "kind: BGPAdvertisement"} {
		if !strings.Contains(got, want) {
			t.Errorf("the export lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "L2Advertisement") {
		t.Errorf("a BGP site got an L2Advertisement:\n%s", got)
	}
}

func TestRefusals(t *testing.T) {
	s := exampleSite(t)
	s.Records = nil
	if _, err := Render("kubeadm", s); err == nil || !strings.Contains(err.Error(), "api.k8s.corp.example") {
		t.Errorf("kubeadm without an api record: got %v", err)
	}
	s.Subnets[0].Ranges = nil
	if _, err := Render("metallb", s); err == nil {
		t.Errorf("metallb without a metallb range: got no error")
	}
	if _, err := Render("helm", s); err == nil || !strings.Contains(err.Error(), "kubeadm") {
		t.Errorf("an unknown kind: got %v, want the list of kinds", err)
	}
}

// TestKubeadmDualStack: a site with pods and services subnets of both families gives
// kubeadm each pair, IPv4 first, and a dual-stack endpoint host both its addresses as
// SANs; no_proxy lists the IPv6 subnets, MetalLB pools an IPv6 range.
func TestKubeadmDualStack(t *testing.T) {
	s := exampleSite(t)
	s.Subnets = append(s.Subnets,
		site.Subnet{Name: "pods6", CIDR: netip.MustParsePrefix("fd00:10:244::/56"), Purpose: site.PurposePods},
		site.Subnet{Name: "svc6", CIDR: netip.MustParsePrefix("fd00:10:96::/112"), Purpose: site.PurposeServices},
		site.Subnet{Name: "vm6", CIDR: netip.MustParsePrefix("fd00:40::/64"), Purpose: site.PurposeNodes, Ranges: []site.Range{
			{Kind: site.RangeReserved, Name: "metallb", Start: netip.MustParseAddr("fd00:40::100"), End: netip.MustParseAddr("fd00:40::1ff")}}})
	for i, h := range s.Hosts {
		if h.Name == "bastion" {
			s.Hosts[i].IP6 = netip.MustParseAddr("fd00:40::2")
		}
	}
	s.Cluster.Endpoint = "bastion.k8s.corp.example:6443"
	for kind, wants := range map[string][]string{
		"kubeadm":  {"podSubnet: 10.244.0.0/16,fd00:10:244::/56", "serviceSubnet: 10.96.0.0/12,fd00:10:96::/112", "    - 10.0.40.2\n    - fd00:40::2\n"},
		"no-proxy": {",fd00:10:244::/56,", ",fd00:40::/64,"},
		"metallb":  {"    - fd00:40::100-fd00:40::1ff\n"},
	} {
		got, err := Render(kind, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range wants {
			if !strings.Contains(got, want) {
				t.Errorf("%s lacks %q:\n%s", kind, want, got)
			}
		}
	}
}

// TestSSHPatterns: known_hosts has no CIDRs: each subnet of nodes is the part of its
// addresses it fixes, which the addresses ssh is given match.
func TestSSHPatterns(t *testing.T) {
	s := Site{Domain: "k8s.example.com"}
	for _, c := range []string{"10.0.40.0/24", "10.1.0.0/16", "10.2.3.128/25", "fd00:40::/64", "2001:db8:1:2::/64", "fd00:0:0:1::/64"} {
		s.Subnets = append(s.Subnets, site.Subnet{CIDR: netip.MustParsePrefix(c), Purpose: site.PurposeNodes})
	}
	s.Subnets = append(s.Subnets, site.Subnet{CIDR: netip.MustParsePrefix("10.244.0.0/16"), Purpose: site.PurposePods})
	want := []string{"*.k8s.example.com", "10.0.40.*", "10.1.*", "10.2.3.*", "fd00:40:*", "2001:db8:1:2:*", "fd00:0:0:1:*"}
	if got := sshPatterns(s); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
