// Package export turns what infrad knows about a site into what a cluster and its
// nodes need: MetalLB pools, a NO_PROXY list, a cert-manager issuer, a kubeadm
// configuration, and a node's chrony.conf, resolv.conf and cloud-init.
package export

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// Site is what an export reads, as the API gives it.
type Site struct {
	Domain    string // without the trailing dot
	Subnets   []site.Subnet
	Hosts     []site.Host
	Records   []site.Record
	Directory string   // the ACME directory URL
	RootPEM   string   // the CA's root certificate
	Server    string   // the address nodes reach infrad at, for DNS and NTP
	Others    []string // the other serving nodes of a cluster, after Server
	Cluster   Cluster
	BGP       *BGP     // nil: MetalLB announces on the layer-2 segment
	DS        []string // the signed zones' DS records, zone-file form; none: DNSSEC is off
	NTS       *NTS     // nil: NTS is off
	SSH       *SSH     // nil: the SSH CA's keys are not made yet
	EAB       *EAB     // nil: the CA takes ACME accounts without external account binding
	// What the way back (dnsmasq, dhcpd) carries besides the objects.
	Zones      []string // further zones, without their dots
	TTL        uint32   // dns.ttl
	Forwarders []string // dns.forwarders, ADDRESS or ADDRESS:PORT
	LeaseTime  time.Duration
}

// EAB is an external account binding key of the CA's, made for the export.
type EAB struct {
	KeyID string
	HMAC  string // base64url, as cert-manager's Secret holds it
}

// SSH is what a node and its users need of the site's SSH CA.
type SSH struct {
	HostCA string // the host CA's public key, authorized_keys form
	UserCA string // the user CA's
	KRLURL string // where sshd's revocation list is fetched
}

// NTS is what a node needs of the site file's ntp.nts, as GET /api/v1/status gives it.
type NTS struct {
	Port uint16 `json:"port"` // NTS-KE's
}

// Cluster is the site file's kubernetes section, as GET /api/v1/status gives it.
type Cluster struct {
	Endpoint    string `json:"endpoint"` // name:port, the name fully qualified without its dot
	ClusterName string `json:"cluster_name"`
	DNSDomain   string `json:"dns_domain"` // without the trailing dot
}

// BGP is the site file's metallb.bgp, as GET /api/v1/status gives it.
type BGP struct {
	MyASN       uint32     `json:"my_asn"`
	PeerASN     uint32     `json:"peer_asn"`
	PeerAddress netip.Addr `json:"peer_address"`
	PeerPort    uint16     `json:"peer_port"`
}

// Kinds are the exports there are, with what each is for.
var Kinds = map[string]string{
	"metallb":      "MetalLB IPAddressPools from the reserved ranges named metallb, with a BGPPeer and BGPAdvertisement (metallb.bgp) or an L2Advertisement",
	"no-proxy":     "a NO_PROXY list: every subnet, the domain, .cluster.local and .svc",
	"cert-manager": "a cert-manager ACME ClusterIssuer for infrad's CA",
	"kubeadm":      "a kubeadm ClusterConfiguration: endpoint (kubernetes.endpoint), cluster name, DNS domain, pod and service subnets, certificate SANs",
	"chrony":       "a node's chrony.conf, with infrad as its time server",
	"resolv":       "a node's resolv.conf, with infrad as its resolver",
	"cloud-init":   "a cloud-config that trusts infrad's root and uses infrad for time and names",
	"ssh":          "a known_hosts @cert-authority line, sshd's TrustedUserCAKeys and an sshd_config snippet with the KRL",
	"ds":           "the DS records of the zones infrad signs (dns.dnssec), for their parent zone or a validating resolver's trust anchors",
	"dnsmasq":      "the site as a dnsmasq.conf: ranges, options, reservations, hosts and records (the way back from infrad import dnsmasq)",
	"dhcpd":        "the site's IPv4 subnets and reservations as an ISC dhcpd.conf (the way back from infrad import dhcpd)",
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
		return chrony(s), nil
	case "dnsmasq":
		return dnsmasq(s), nil
	case "dhcpd":
		return dhcpd(s), nil
	case "ds":
		if len(s.DS) == 0 {
			return "", fmt.Errorf("no zone is signed: DNSSEC is off (dns.dnssec), or its keys are not made yet (see /readyz)")
		}
		return fmt.Sprintf("; DS records of the zones infrad signs for %s. Give each to its parent zone, or to a\n; validating resolver as a trust anchor (Unbound: trust-anchor: \"<record>\").\n%s\n", s.Domain, strings.Join(s.DS, "\n")), nil
	case "ssh":
		if s.SSH == nil {
			return "", fmt.Errorf("the SSH CA has no keys yet: a node that can write (a quorum) makes them when first asked")
		}
		return sshTrust(s), nil
	case "resolv":
		var servers strings.Builder
		for _, a := range s.servers() {
			fmt.Fprintf(&servers, "nameserver %s\n", a)
		}
		return fmt.Sprintf("# resolv.conf for a node of %s, from infrad\n%ssearch %s\noptions edns0\n", s.Domain, servers.String(), s.Domain), nil
	}
	names := make([]string, 0, len(Kinds))
	for k := range Kinds {
		names = append(names, k)
	}
	slices.Sort(names)
	return "", fmt.Errorf("no export %q: there are %s", kind, strings.Join(names, ", "))
}

// sshTrust is what makes the site's SSH CA trusted: a known_hosts line for clients
// (the host CA, for the site's names and its nodes' addresses), and for each sshd its
// user CA, its host certificate and the KRL.
func sshTrust(s Site) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# SSH trust for %s, from infrad\n\n", s.Domain)
	fmt.Fprintf(&b, "# known_hosts (~/.ssh/known_hosts or /etc/ssh/ssh_known_hosts): hosts whose certificate the site's CA\n"+
		"# signed are trusted with no prompt, under the names the certificate carries. known_hosts has no CIDRs:\n"+
		"# each subnet is the part of its addresses it fixes. With CanonicalizeHostname yes and CanonicalDomains %s in\n"+
		"# ssh_config, short names (ssh cp01) are looked up under the domain too.\n", s.Domain)
	fmt.Fprintf(&b, "@cert-authority %s %s\n\n", strings.Join(sshPatterns(s), ","), s.SSH.HostCA)
	b.WriteString("# /etc/ssh/infrad_user_ca.pub: the users sshd lets in with a certificate from the site's CA\n")
	fmt.Fprintf(&b, "%s\n\n", s.SSH.UserCA)
	b.WriteString("# /etc/ssh/sshd_config.d/infrad.conf (the host certificate: infrad ssh host NAME; renewed by infrad ssh renew)\n" +
		"HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub\n" +
		"TrustedUserCAKeys /etc/ssh/infrad_user_ca.pub\n" +
		"RevokedKeys /etc/ssh/infrad.krl\n\n")
	fmt.Fprintf(&b, "# /etc/ssh/infrad.krl: the revoked certificates, fetched again after each revocation (sshd reads it\n"+
		"# at each login; without the file sshd refuses every key):\n# curl -fsS -o /etc/ssh/infrad.krl.new %s && mv /etc/ssh/infrad.krl.new /etc/ssh/infrad.krl\n", s.SSH.KRLURL)
	return b.String()
}

// sshPatterns are the known_hosts patterns of the site: its domain, and each subnet
// of nodes as the octets its prefix fixes (10.0.40.0/24 is 10.0.40.*; a prefix
// between octets widens to the octet above it), or an IPv6 subnet as the groups it
// fixes up to the last that is not zero, as addresses are written (fd00:40::/64 is
// fd00:40:*, which fd00:40::10 matches).
func sshPatterns(s Site) []string {
	out := []string{"*." + s.Domain}
	for _, sn := range s.Subnets {
		if sn.Purpose != site.PurposeNodes {
			continue
		}
		var parts []string
		if a := sn.CIDR.Addr(); a.Is4() {
			b := a.As4()
			for i := range sn.CIDR.Bits() / 8 {
				parts = append(parts, strconv.Itoa(int(b[i])))
			}
		} else {
			b := a.As16()
			for i := range sn.CIDR.Bits() / 16 {
				parts = append(parts, strconv.FormatUint(uint64(b[2*i])<<8|uint64(b[2*i+1]), 16))
			}
			for len(parts) > 0 && parts[len(parts)-1] == "0" {
				parts = parts[:len(parts)-1]
			}
		}
		if len(parts) == 0 {
			continue // every address, or nearly: a site's CA should not claim them
		}
		sep := "."
		if sn.CIDR.Addr().Is6() {
			sep = ":"
		}
		p := strings.Join(parts, sep)
		if len(parts) < 4 || sn.CIDR.Addr().Is6() && sn.CIDR.Bits() < 128 {
			p += sep + "*"
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// chrony is a node's chrony.conf; with NTS on, the time it takes is authenticated
// (RFC 8915), by a certificate that chains to the site's root.
func chrony(s Site) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# chrony.conf for a node of %s, from infrad\n", s.Domain)
	nts := ""
	if s.NTS != nil {
		fmt.Fprintf(&b, "# NTS: chronyd takes time only from a server whose NTS-KE certificate chains to the\n"+
			"# site's root, saved at /etc/chrony/infrad-root.pem (GET /api/v1/ca/root.pem). The name or\n"+
			"# address on each server line must be in that certificate: ntp.%[1]s, infrad.%[1]s,\n"+
			"# dns.advertise, a cluster node's address, or the NTS-KE listen address.\n", s.Domain)
		nts = " nts"
		if s.NTS.Port != 4460 {
			nts += fmt.Sprintf(" ntsport %d", s.NTS.Port)
		}
	}
	for _, a := range s.servers() {
		fmt.Fprintf(&b, "server %s iburst%s\n", a, nts)
	}
	if s.NTS != nil {
		b.WriteString("ntstrustedcerts /etc/chrony/infrad-root.pem\nntsdumpdir /var/lib/chrony\n")
	}
	b.WriteString("makestep 1.0 3\nrtcsync\ndriftfile /var/lib/chrony/chrony.drift\n")
	return b.String()
}

func metallb(s Site) (string, error) {
	var b strings.Builder
	var pools []string
	for _, sn := range s.Subnets {
		for _, r := range sn.Ranges {
			if r.Kind != site.RangeReserved || !strings.HasPrefix(r.Name, "metallb") {
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
	if bgp := s.BGP; bgp != nil {
		fmt.Fprintf(&b, "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata:\n  name: infrad\n  namespace: metallb-system\nspec:\n  myASN: %d\n  peerASN: %d\n  peerAddress: %s\n  peerPort: %d\n---\n",
			bgp.MyASN, bgp.PeerASN, bgp.PeerAddress, bgp.PeerPort)
		fmt.Fprintf(&b, "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata:\n  name: infrad\n  namespace: metallb-system\nspec:\n  ipAddressPools:\n")
	} else {
		fmt.Fprintf(&b, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: infrad\n  namespace: metallb-system\nspec:\n  ipAddressPools:\n")
	}
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
	issuer := fmt.Sprintf(`apiVersion: cert-manager.io/v1
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
	if s.EAB == nil {
		return issuer
	}
	// The CA wants an EAB key (ca.acme_eab): one made for this export, its secret in
	// a Secret of cert-manager's namespace, which a ClusterIssuer reads.
	return issuer + fmt.Sprintf(`    externalAccountBinding:
      keyID: %s
      keySecretRef:
        name: infrad-acme-eab
        key: secret
---
apiVersion: v1
kind: Secret
metadata:
  name: infrad-acme-eab
  namespace: cert-manager
type: Opaque
stringData:
  secret: %s
`, s.EAB.KeyID, s.EAB.HMAC)
}

// kubeadm writes a ClusterConfiguration (kubeadm.k8s.io/v1beta4) whose endpoint is the
// site file's kubernetes.endpoint, which must resolve in the site: a host, A or AAAA
// records, or a CNAME chain to one of those (a load balancer's host, a kube-vip VIP).
// The endpoint's names and addresses are the API server's extra certificate SANs.
func kubeadm(s Site) (string, error) {
	pods, services := dualStack(s, site.PurposePods), dualStack(s, site.PurposeServices)
	c := s.Cluster
	if c.Endpoint == "" {
		c.Endpoint = "api." + s.Domain + ":6443"
	}
	name, _, _ := strings.Cut(c.Endpoint, ":")
	sans, err := resolve(s, name)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nclusterName: %s\ncontrolPlaneEndpoint: %s\n", or(c.ClusterName, "kubernetes"), c.Endpoint)
	fmt.Fprintf(&b, "networking:\n  dnsDomain: %s\n", or(c.DNSDomain, "cluster.local"))
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

// dualStack is the site's subnet of purpose p as kubeadm takes it: one, or an IPv4 and
// an IPv6 subnet, comma-separated, IPv4 first (a dual-stack cluster's pods or
// services); "": none.
func dualStack(s Site, p site.Purpose) string {
	var v4, v6 string
	for _, sn := range s.Subnets {
		switch {
		case sn.Purpose != p:
		case sn.CIDR.Addr().Is4() && v4 == "":
			v4 = sn.CIDR.String()
		case sn.CIDR.Addr().Is6() && v6 == "":
			v6 = sn.CIDR.String()
		}
	}
	return strings.Trim(v4+","+v6, ",")
}

// resolve follows name through the site's hosts and records to its addresses, and
// returns the names on the way and the addresses, in order.
func resolve(s Site, name string) ([]string, error) {
	var out []string
	start := name
	for range 8 {
		out = append(out, name)
		fqdn := site.Name(name + ".")
		var addrs []string
		for _, h := range s.Hosts {
			if site.HostFQDN(h.Name, site.Name(s.Domain+".")) == site.Name(name+".") {
				for _, a := range h.Addrs() {
					addrs = append(addrs, a.String())
				}
			}
		}
		next := ""
		for _, r := range s.Records {
			switch {
			case r.Name != fqdn:
			case r.Type == "A" || r.Type == "AAAA":
				if a, err := netip.ParseAddr(r.Value); err == nil {
					addrs = append(addrs, a.String())
				}
			case r.Type == "CNAME":
				next = strings.TrimSuffix(r.Value, ".")
			}
		}
		if len(addrs) > 0 {
			return append(out, addrs...), nil
		}
		if next == "" {
			break
		}
		name = next
	}
	return nil, fmt.Errorf("the endpoint %s resolves to no address in the site: add a host or an A record for it, or point kubernetes.endpoint at one", start)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func cloudInit(s Site) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#cloud-config\n# for a node of %s, from infrad\nca_certs:\n  trusted:\n    - |\n", s.Domain)
	for _, line := range strings.Split(strings.TrimSpace(s.RootPEM), "\n") {
		fmt.Fprintf(&b, "      %s\n", line)
	}
	servers := strings.Join(s.servers(), ", ")
	fmt.Fprintf(&b, "ntp:\n  enabled: true\n  servers: [%s]\n", servers)
	if s.NTS != nil {
		// chronyd with NTS, trusting the system's roots, among them the site's root that
		// ca_certs installs above: cloud-init's chrony template, with nts on each server.
		port := ""
		if s.NTS.Port != 4460 {
			port = fmt.Sprintf(" ntsport %d", s.NTS.Port)
		}
		fmt.Fprintf(&b, "  ntp_client: chrony\n  config:\n    template: |\n      ## template:jinja\n"+
			"      {%% for server in servers -%%}\n      server {{ server }} iburst nts%s\n      {%% endfor -%%}\n"+
			"      ntsdumpdir /var/lib/chrony\n      makestep 1.0 3\n      rtcsync\n      driftfile /var/lib/chrony/chrony.drift\n", port)
	}
	fmt.Fprintf(&b, "manage_resolv_conf: true\nresolv_conf:\n  nameservers: [%s]\n  searchdomains: [%s]\n  domain: %s\n", servers, s.Domain, s.Domain)
	return b.String()
}

// servers are where nodes reach infrad: Server, then a cluster's other serving nodes
// (resolv.conf takes three name servers; a cluster has at most three serving nodes).
func (s Site) servers() []string {
	out := []string{s.Server}
	for _, o := range s.Others {
		if o != s.Server {
			out = append(out, o)
		}
	}
	return out
}
