package ntp

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/pkg/ratelimit"
)

type metrics struct {
	requests, limited, dropped prometheus.Counter
	evicted                    prometheus.Counter // clients the rate limit forgot to make room
	offset, stratum, leap      prometheus.Gauge
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
	}
	reg.MustRegister(m.requests, m.limited, m.dropped, m.offset, m.stratum, m.leap, m.evicted)
	return m
}

func (m *metrics) publish(st *State) {
	m.offset.Set(st.Offset)
	m.stratum.Set(float64(st.Stratum))
	m.leap.Set(float64(st.Leap))
}
