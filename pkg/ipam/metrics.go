package ipam

import (
	"math"
	"math/big"
	"net/netip"

	"github.com/infrad/infrad/pkg/site"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	subnetAddressesDesc = prometheus.NewDesc("infrad_ipam_subnet_addresses",
		"Usable addresses of a subnet (network and broadcast excluded): used by the gateway, a host, a lease or a reserved range, or free.",
		[]string{"subnet", "state"}, nil)
	rangeAddressesDesc = prometheus.NewDesc("infrad_ipam_range_addresses",
		"Addresses of a range: a dhcp range's used ones are leased; a reserved range's are all used.",
		[]string{"subnet", "range", "kind", "state"}, nil)
)

// collector reports how full each subnet and range is, read from the published model
// at scrape.
type collector struct {
	m *IPAM
}

// NewCollector returns a Prometheus collector of m's address usage.
func NewCollector(m *IPAM) prometheus.Collector { return collector{m} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- subnetAddressesDesc
	ch <- rangeAddressesDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	model := c.m.Model()
	set := model.Set()
	leases := model.Leases()
	for _, sn := range set.Subnets {
		usage := subnetUsage(sn, set.Hosts, leases)
		ch <- prometheus.MustNewConstMetric(subnetAddressesDesc, prometheus.GaugeValue, usage.used, sn.Name, "used")
		ch <- prometheus.MustNewConstMetric(subnetAddressesDesc, prometheus.GaugeValue, usage.size-usage.used, sn.Name, "free")
		for i, r := range sn.Ranges {
			name := r.Name
			if name == "" {
				name = r.Start.String() + "-" + r.End.String()
			}
			used := usage.perRange[i]
			ch <- prometheus.MustNewConstMetric(rangeAddressesDesc, prometheus.GaugeValue, used, sn.Name, name, string(r.Kind), "used")
			ch <- prometheus.MustNewConstMetric(rangeAddressesDesc, prometheus.GaugeValue, span(r.Start, r.End)-used, sn.Name, name, string(r.Kind), "free")
		}
	}
}

type usage struct {
	size, used float64
	perRange   []float64 // used addresses of each range, by index
}

func subnetUsage(sn site.Subnet, hosts []site.Host, leases []Lease) usage {
	u := usage{size: math.Ldexp(1, sn.CIDR.Addr().BitLen()-sn.CIDR.Bits()), perRange: make([]float64, len(sn.Ranges))}
	if sn.CIDR.Addr().Is4() && sn.CIDR.Bits() < 31 {
		u.size -= 2
	}
	held := func(a netip.Addr) {
		if !sn.CIDR.Contains(a) {
			return
		}
		for i, r := range sn.Ranges {
			if r.Contains(a) {
				if r.Kind == site.RangeDHCP {
					u.perRange[i]++
					u.used++
				}
				return // a reserved range counts whole, below
			}
		}
		u.used++
	}
	if sn.Gateway.IsValid() {
		held(sn.Gateway)
	}
	for _, h := range hosts {
		for _, a := range h.Addrs() {
			held(a)
		}
	}
	for _, l := range leases {
		held(l.IP)
	}
	for i, r := range sn.Ranges {
		if r.Kind == site.RangeReserved {
			u.perRange[i] = span(r.Start, r.End)
			u.used += u.perRange[i]
		}
	}
	return u
}

// span counts the addresses from start to end, both included.
func span(start, end netip.Addr) float64 {
	s, e := start.As16(), end.As16()
	n := new(big.Int).Sub(new(big.Int).SetBytes(e[:]), new(big.Int).SetBytes(s[:]))
	f, _ := new(big.Float).SetInt(n.Add(n, big.NewInt(1))).Float64()
	return f
}
