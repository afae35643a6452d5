package dhcp

import (
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts messages by type, and the times a pool had nothing to offer. How full
// each range is comes from IPAM (infrad_ipam_range_addresses), which counts leases.
type metrics struct {
	in, out, dry *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		in: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infrad_dhcp_received_total", Help: "DHCP messages received for our subnets, by type (declines among them).",
		}, []string{"type"}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infrad_dhcp_sent_total", Help: "DHCP replies sent, by type: offers, acks and naks.",
		}, []string{"type"}),
		dry: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infrad_dhcp_pool_exhausted_total", Help: "DISCOVERs left unanswered because the subnet's pool had no free address.",
		}, []string{"subnet"}),
	}
	reg.MustRegister(m.in, m.out, m.dry)
	return m
}

func (m *metrics) received(t dhcpv4.MessageType) { m.in.WithLabelValues(t.String()).Inc() }
func (m *metrics) sent(t dhcpv4.MessageType)     { m.out.WithLabelValues(t.String()).Inc() }
func (m *metrics) exhausted(subnet string)       { m.dry.WithLabelValues(subnet).Inc() }
