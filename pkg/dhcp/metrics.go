package dhcp

import (
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/pkg/ratelimit"
)

// metrics counts messages by type, and the times a pool had nothing to offer. How full
// each range is comes from IPAM (infrad_ipam_range_addresses), which counts leases.
// The counters of each message type are made up front, so a packet costs no label lookup.
type metrics struct {
	in, out [maxType + 1]prometheus.Counter
	dry     *prometheus.CounterVec
	limited *prometheus.CounterVec // by "mac" or "relay"
	naks    *prometheus.CounterVec // by reason
	// noQuorum counts the DISCOVERs and REQUESTs a node cut off from its cluster's
	// quorum answered only from what it holds, or left to the others.
	noQuorum prometheus.Counter
	shed     prometheus.Counter // REQUESTs dropped while maxCommits others waited, and as many more
	// evictedMAC and evictedRelay count the clients and relays the rate limits forgot
	// to make room.
	evictedMAC, evictedRelay prometheus.Counter
	offersDropped            prometheus.Counter     // offers dropped, oldest first, past maxOffers
	endsDropped              prometheus.Counter     // RELEASEs and DECLINEs dropped, oldest first, past maxHeldEnds
	behind                   prometheus.Counter     // DISCOVERs left to the others while this node catches up
	netboot                  *prometheus.CounterVec // replies pointing a network boot client onward, by firmware
}

// maxType is the highest DHCP message type counted by name (RFC 2132: 1 to 8).
const maxType = dhcpv4.MessageTypeInform

func newMetrics(reg prometheus.Registerer) *metrics {
	in := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "infrad_dhcp_received_total", Help: "DHCP messages received for our subnets, by type (declines among them).",
	}, []string{"type"})
	out := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "infrad_dhcp_sent_total", Help: "DHCP replies sent, by type: offers, acks and naks.",
	}, []string{"type"})
	m := &metrics{dry: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "infrad_dhcp_pool_exhausted_total", Help: "DISCOVERs left unanswered because the subnet's pool had no free address.",
	}, []string{"subnet"}), limited: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "infrad_dhcp_rate_limited_total", Help: "Messages dropped because their client (by MAC) or relay asked too fast: starvation.",
	}, []string{"by"}), naks: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "infrad_dhcp_naks_total", Help: "REQUESTs NAKed, by reason: wrong_network (the address is not on the client's subnet), offered_to_another, refused (by the write path: the address is held, out of range, or not the client's reservation).",
	}, []string{"reason"}), noQuorum: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "infrad_dhcp_without_quorum_total", Help: "DISCOVERs and REQUESTs met while this node was cut off from its cluster's quorum: reservations and held leases answered, new addresses refused.",
	}), shed: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "infrad_dhcp_shed_total", Help: "REQUESTs dropped unanswered because as many messages as the service lets wait for their commits were waiting already, and as many more for a worker (the client asks again).",
	})}
	for _, r := range []string{nakWrongNetwork, nakOffered, nakRefused} {
		m.naks.WithLabelValues(r) // every reason from the start, at 0
	}
	for t := range m.in {
		name := "other"
		if t > 0 {
			name = dhcpv4.MessageType(t).String()
		}
		m.in[t], m.out[t] = in.WithLabelValues(name), out.WithLabelValues(name)
	}
	m.evictedMAC, m.evictedRelay = ratelimit.Evictions("dhcp_mac"), ratelimit.Evictions("dhcp_relay")
	m.offersDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "infrad_dhcp_offers_dropped_total",
		Help: "Offers dropped, the oldest first, to keep at most 16,384 waiting for their REQUESTs (a flood of DISCOVERs from new clients).",
	})
	m.endsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "infrad_dhcp_ends_dropped_total",
		Help: "RELEASEs and DECLINEs dropped, the oldest first, to keep at most 1,024 waiting for the cluster's quorum (their leases end when they expire).",
	})
	m.behind = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "infrad_dhcp_behind_total",
		Help: "DISCOVERs left unanswered while this node, just started, had not yet applied the cluster's log as far as the leader had committed it.",
	})
	m.netboot = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "infrad_dhcp_netboot_total",
		Help: "Replies that pointed a network boot client onward, by its firmware: pxe (an iPXE binary over TFTP), http (UEFI HTTP boot), ipxe (its script), pi (a Raspberry Pi: next-server and its option 43).",
	}, []string{"firmware"})
	reg.MustRegister(m.netboot, in, out, m.dry, m.limited, m.naks, m.noQuorum, m.shed, m.evictedMAC, m.evictedRelay, m.offersDropped, m.endsDropped, m.behind)
	return m
}

func index(t dhcpv4.MessageType) int {
	if t > maxType {
		return 0
	}
	return int(t)
}

func (m *metrics) received(t dhcpv4.MessageType) { m.in[index(t)].Inc() }
func (m *metrics) sent(t dhcpv4.MessageType)     { m.out[index(t)].Inc() }
func (m *metrics) exhausted(subnet string)       { m.dry.WithLabelValues(subnet).Inc() }
func (m *metrics) nak(reason string)             { m.naks.WithLabelValues(reason).Inc() }
