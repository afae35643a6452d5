package boot

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	tftp      *prometheus.CounterVec
	tftpBytes prometheus.Counter
	http      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		tftp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infrad_boot_tftp_requests_total",
			Help: "TFTP read requests, by outcome: sent, not_found, refused (too many transfers at once), failed (the client stopped).",
		}, []string{"outcome"}),
		tftpBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "infrad_boot_tftp_bytes_total",
			Help: "Bytes of files sent over TFTP.",
		}),
		http: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infrad_boot_http_requests_total",
			Help: "Requests to the boot endpoint, by what was asked (script, file, booted) and the status answered.",
		}, []string{"kind", "code"}),
	}
	reg.MustRegister(m.tftp, m.tftpBytes, m.http)
	return m
}
