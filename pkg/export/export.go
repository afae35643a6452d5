// Package export turns what infrad knows about a site into what a cluster and its
// nodes need: MetalLB pools, a NO_PROXY list, a cert-manager issuer, a kubeadm
// configuration, and a node's chrony.conf, resolv.conf and cloud-init.
package export

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/infrad/infrad/pkg/ipam"
)

// Site is what an export reads, as the API gives it.
type Site struct {
	Domain    string // without the trailing dot
	Subnets   []ipam.Subnet
	Records   []ipam.Record
	Directory string // the ACME directory URL
	RootPEM   string // the CA's root certificate
	Server    string // the address nodes reach infrad at, for DNS and NTP
}

// Kinds are the exports there are, with what each is for.
var Kinds = map[string]string{
	"metallb":      "MetalLB IPAddressPool and L2Advertisement from the reserved ranges named metallb",
	"no-proxy":     "a NO_PROXY list: every subnet, the domain, .cluster.local and .svc",
	"cert-manager": "a cert-manager ACME ClusterIssuer for infrad's CA",
	"kubeadm":      "a kubeadm ClusterConfiguration: endpoint, pod and service subnets, certificate SANs",
	"chrony":       "a node's chrony.conf, with infrad as its time server",
	"resolv":       "a node's resolv.conf, with infrad as its resolver",
	"cloud-init":   "a cloud-config that trusts infrad's root and uses infrad for time and names",
}

// Render writes the export kind of s.
func Render(kind string, s Site) (string, error) {
	switch kind {
	case "metallb":
		return metallb(s)
	case "no-proxy":
		return noProxy(s), nil
	case "cert-manager", "cloud-init":
		if s.RootPEM == "" {
			return "", fmt.Errorf("the CA has not started, and %s needs its root: see /readyz", kind)
		}
		if kind == "cloud-init" {
			return cloudInit(s), nil
		}
		return certManager(s), nil
	case "kubeadm":
		return kubeadm(s)
	case "chrony":
		return fmt.Sprintf("# chrony.conf for a node of %s, from infrad\nserver %s iburst\nmakestep 1.0 3\nrtcsync\ndriftfile /var/lib/chrony/chrony.drift\n", s.Domain, s.Server), nil
	case "resolv":
		return fmt.Sprintf("# resolv.conf for a node of %s, from infrad\nnameserver %s\nsearch %s\noptions edns0\n", s.Domain, s.Server, s.Domain), nil
	}
	names := make([]string, 0, len(Kinds))
	for k := range Kinds {
		names = append(names, k)
	}
	slices.Sort(names)
	return "", fmt.Errorf("no export %q: there are %s", kind, strings.Join(names, ", "))
}

func metallb(s Site) (string, error) {
	var b strings.Builder
	var pools []string
	for _, sn := range s.Subnets {
		for _, r := range sn.Ranges {
			if r.Kind != ipam.RangeReserved || !strings.HasPrefix(r.Name, "metallb") {
				continue
			}
			name := sn.Name + "-" + r.Name
			pools = append(pools, name)
			fmt.Fprintf(&b, "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: %s\n  namespace: metallb-system\nspec:\n  addresses:\n    - %s-%s\n---\n", name, r.Start, r.End)
		}
	}
	if len(pools) == 0 {
		return "", fmt.Errorf("no reserved range is named metallb: add one to a subnet, such as {kind: reserved, name: metallb, start: ..., end: ...}")
	}
	fmt.Fprintf(&b, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: infrad\n  namespace: metallb-system\nspec:\n  ipAddressPools:\n")
	for _, p := range pools {
		fmt.Fprintf(&b, "    - %s\n", p)
	}
	return b.String(), nil
}

func noProxy(s Site) string {
	list := []string{"localhost", "127.0.0.1", "::1"}
	for _, sn := range s.Subnets {
		list = append(list, sn.CIDR.String())
	}
	list = append(list, s.Domain, "."+s.Domain, ".cluster.local", ".svc")
	return strings.Join(list, ",") + "\n"
}

func certManager(s Site) string {
	return fmt.Sprintf(`apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: infrad
spec:
  acme:
    server: %s
    caBundle: %s
    privateKeySecretRef:
      name: infrad-acme-account
    solvers:
      - http01:
          ingress: {}
`, s.Directory, base64.StdEncoding.EncodeToString([]byte(s.RootPEM)))
}

// kubeadm's endpoint is the api record (api.<domain>), on port 6443.
func kubeadm(s Site) (string, error) {
	var pods, services string
	for _, sn := range s.Subnets {
		switch sn.Purpose {
		case ipam.PurposePods:
			pods = sn.CIDR.String()
		case ipam.PurposeServices:
			services = sn.CIDR.String()
		}
	}
	api := "api." + s.Domain
	sans := []string{api}
	found := false
	for _, r := range s.Records {
		if strings.TrimSuffix(string(r.Name), ".") == api && (r.Type == "A" || r.Type == "AAAA") {
			found = true
			if a, err := netip.ParseAddr(r.Value); err == nil {
				sans = append(sans, a.String())
			}
		}
	}
	if !found {
		return "", fmt.Errorf("no A record for %s: add {name: api, type: A, value: <the control plane's VIP>} to dns.records", api)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: %s:6443\n", api)
	b.WriteString("networking:\n")
	if pods != "" {
		fmt.Fprintf(&b, "  podSubnet: %s\n", pods)
	}
	if services != "" {
		fmt.Fprintf(&b, "  serviceSubnet: %s\n", services)
	}
	b.WriteString("apiServer:\n  certSANs:\n")
	for _, san := range sans {
		fmt.Fprintf(&b, "    - %s\n", san)
	}
	return b.String(), nil
}

func cloudInit(s Site) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#cloud-config\n# for a node of %s, from infrad\nca_certs:\n  trusted:\n    - |\n", s.Domain)
	for _, line := range strings.Split(strings.TrimSpace(s.RootPEM), "\n") {
		fmt.Fprintf(&b, "      %s\n", line)
	}
	fmt.Fprintf(&b, "ntp:\n  enabled: true\n  servers: [%s]\nmanage_resolv_conf: true\nresolv_conf:\n  nameservers: [%s]\n  searchdomains: [%s]\n  domain: %s\n", s.Server, s.Server, s.Domain, s.Domain)
	return b.String()
}
