package ntp

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/pkg/ratelimit"
)

type metrics struct {
	requests, limited, dropped prometheus.Counter
	evicted                    prometheus.Counter // clients the rate limit forgot to make room
	offset, stratum, leap      prometheus.Gauge
	// NTS: authenticated replies, NAKs (a cookie not opened), NTS-KE handshakes,
	// failed key establishments, cookies issued by NTS-KE.
	ntsReplies, ntsNAKs, ntsHandshakes, ntsErrors, ntsCookies prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounter(prometheus.CounterOpts{Name: "infrad_ntp_requests_total", Help: "NTP client requests answered or refused."}),
		limited:  prometheus.NewCounter(prometheus.CounterOpts{Name: "infrad_ntp_rate_limited_total", Help: "Requests answered with a KoD RATE."}),
		dropped:  prometheus.NewCounter(prometheus.CounterOpts{Name: "infrad_ntp_dropped_total", Help: "Packets that were not NTP client requests, dropped."}),
		offset:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "infrad_ntp_offset_seconds", Help: "This clock's offset against its time source (0 with none)."}),
		stratum:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "infrad_ntp_stratum", Help: "The stratum infrad serves (16: none)."}),
		leap:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "infrad_ntp_leap", Help: "The leap indicator infrad serves (3: not synchronised)."}),
		evicted:  ratelimit.Evictions("ntp"),

		ntsReplies:    prometheus.NewCounter(prometheus.CounterOpts{Name: "infrad_nts_replies_total", Help: "NTS-authenticated NTP replies."}),
		ntsNAKs:       prometheus.NewCounter(prometheus.CounterOpts{Name: "infrad_nts_naks_total", Help: "NTS requests whose cookie could not be opened, answered with an NTS NAK."}),
		ntsHandshakes: prometheus.NewCounter(prometheus.CounterOpts{Name: "infrad_nts_ke_handshakes_total", Help: "NTS-KE TLS handshakes completed."}),
		ntsErrors:     prometheus.NewCounter(prometheus.CounterOpts{Name: "infrad_nts_ke_errors_total", Help: "NTS-KE connections that ended in an error."}),
		ntsCookies:    prometheus.NewCounter(prometheus.CounterOpts{Name: "infrad_nts_ke_cookies_total", Help: "Cookies NTS-KE gave clients."}),
	}
	reg.MustRegister(m.requests, m.limited, m.dropped, m.offset, m.stratum, m.leap, m.evicted,
		m.ntsReplies, m.ntsNAKs, m.ntsHandshakes, m.ntsErrors, m.ntsCookies)
	return m
}

// The ntske.Stats of the NTS-KE servers.
func (m *metrics) IncHandshakes()         { m.ntsHandshakes.Inc() }
func (m *metrics) IncErrors()             { m.ntsErrors.Inc() }
func (m *metrics) AddCookiesIssued(n int) { m.ntsCookies.Add(float64(n)) }

func (m *metrics) publish(st *State) {
	m.offset.Set(st.Offset)
	m.stratum.Set(float64(st.Stratum))
	m.leap.Set(float64(st.Leap))
}
