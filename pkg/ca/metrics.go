package ca

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	issuedDesc = prometheus.NewDesc("infrad_ca_certificates_issued",
		"Certificates the CA has issued (revoked ones included).", nil, nil)
	expiryDesc = prometheus.NewDesc("infrad_ca_intermediate_expiry_days",
		"Days until the intermediate certificate expires.", nil, nil)
)

// collector reports the CA's gauges at scrape time, and counts failed issuances.
type collector struct {
	s      *Service
	failed prometheus.Counter
}

func newCollector(s *Service) *collector {
	return &collector{s: s, failed: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "infrad_ca_issue_failures_total",
		Help: "Orders whose finalize (where a certificate is signed) was refused or failed.",
	})}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- issuedDesc
	ch <- expiryDesc
	c.failed.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.failed.Collect(ch)
	if certs, err := c.s.Certificates(); err == nil {
		ch <- prometheus.MustNewConstMetric(issuedDesc, prometheus.GaugeValue, float64(len(certs)))
	}
	if info, err := c.s.Info(); err == nil {
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, time.Until(info.IntermediateExpiry).Hours()/24)
	}
}

// countFailures counts the finalize requests answered with an error.
func (c *collector) countFailures(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/finalize") {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		if sw.status >= 400 {
			c.failed.Inc()
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}
