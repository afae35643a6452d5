package config

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/infrad/infrad/pkg/site"
)

// Kubernetes says what the exports tell kubeadm about the cluster the site hosts.
type Kubernetes struct {
	Endpoint     site.Name // the control plane's name in the site: a host, an A/AAAA record or a CNAME to one
	EndpointPort uint16
	ClusterName  string
	DNSDomain    site.Name // the cluster's service domain, cluster.local by default
}

// MetalLB says how MetalLB announces the site's metallb pools: by BGP when BGP is
// set, on the layer-2 segment otherwise.
type MetalLB struct {
	BGP *BGP
}

// BGP is one BGP session between the cluster's speakers and the site's router.
type BGP struct {
	MyASN       uint32     // the cluster's AS
	PeerASN     uint32     // the router's AS
	PeerAddress netip.Addr // the router
	PeerPort    uint16     // 179 unless set
}

// Defaults for the cluster's keys.
const (
	DefaultEndpoint    = "api:6443"
	DefaultClusterName = "kubernetes"
	DefaultDNSDomain   = "cluster.local"
)

type fileKubernetes struct {
	Endpoint    string `yaml:"endpoint"`
	ClusterName string `yaml:"cluster_name"`
	DNSDomain   string `yaml:"dns_domain"`
}

type fileMetalLB struct {
	BGP *fileBGP `yaml:"bgp"`
}

type fileBGP struct {
	MyASN       *int   `yaml:"my_asn"`
	PeerASN     *int   `yaml:"peer_asn"`
	PeerAddress string `yaml:"peer_address"`
	PeerPort    *int   `yaml:"peer_port"`
}

func (v *validator) kubernetes(f *fileKubernetes, s *Site) Kubernetes {
	k := Kubernetes{ClusterName: orDefault(f.ClusterName, DefaultClusterName)}
	host, port, err := net.SplitHostPort(orDefault(f.Endpoint, DefaultEndpoint))
	if err != nil {
		v.errorf("kubernetes.endpoint", "%q is not a name with a port, such as api:6443 or lb.%s:6443", f.Endpoint, s.Domain)
	} else {
		if n, err := site.ParseOwner(host, s.Domain); err != nil {
			v.errorf("kubernetes.endpoint", "%v", err)
		} else if s.Domain != "" && !slices.ContainsFunc(append([]site.Name{s.Domain}, s.DNS.Zones...), n.IsIn) {
			v.errorf("kubernetes.endpoint", "%s is outside the site's zones: the endpoint is a name infrad serves", n)
		} else {
			k.Endpoint = n
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			v.errorf("kubernetes.endpoint", "%q is not a port from 1 to 65535", port)
		} else {
			k.EndpointPort = uint16(p)
		}
	}
	if err := site.CheckHostname(k.ClusterName); err != nil {
		v.errorf("kubernetes.cluster_name", "%q is not a cluster name: one DNS label, such as %s", k.ClusterName, DefaultClusterName)
	}
	if d, err := site.ParseZone(orDefault(f.DNSDomain, DefaultDNSDomain)); err != nil {
		v.errorf("kubernetes.dns_domain", "%v", err)
	} else {
		k.DNSDomain = d
	}
	return k
}

func (v *validator) metallb(f *fileMetalLB) MetalLB {
	if f.BGP == nil {
		return MetalLB{}
	}
	asn := func(at string, n *int) uint32 {
		switch {
		case n == nil:
			v.errorf(at, "BGP needs it: the AS number, such as 64512")
		case *n < 1 || *n > math.MaxUint32:
			v.errorf(at, "%d is not an AS number from 1 to 4294967295", *n)
		default:
			return uint32(*n)
		}
		return 0
	}
	b := &BGP{MyASN: asn("metallb.bgp.my_asn", f.BGP.MyASN), PeerASN: asn("metallb.bgp.peer_asn", f.BGP.PeerASN), PeerPort: 179}
	if f.BGP.PeerAddress == "" {
		v.errorf("metallb.bgp.peer_address", "BGP needs the router's address")
	} else {
		b.PeerAddress = v.addr("metallb.bgp.peer_address", f.BGP.PeerAddress)
	}
	if p := f.BGP.PeerPort; p != nil {
		if *p < 1 || *p > 65535 {
			v.errorf("metallb.bgp.peer_port", "%d is not a port from 1 to 65535", *p)
		} else {
			b.PeerPort = uint16(*p)
		}
	}
	return MetalLB{BGP: b}
}

// String is the endpoint as kubeadm's controlPlaneEndpoint takes it.
func (k Kubernetes) String() string {
	return fmt.Sprintf("%s:%d", strings.TrimSuffix(string(k.Endpoint), "."), k.EndpointPort)
}
