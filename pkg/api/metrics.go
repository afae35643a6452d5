package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/infrad/infrad/pkg/service"
)

// metricsHandler serves the process-wide default registry (Go runtime and process
// metrics, and the collectors libraries register there) together with reg, which
// holds this server's own.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(prometheus.Gatherers{prometheus.DefaultGatherer, reg}, promhttp.HandlerOpts{})
}

var serviceReadyDesc = prometheus.NewDesc("infrad_service_ready",
	"1 when the service is ready, 0 otherwise.", []string{"service"}, nil)

// serviceCollector reports the readiness table as infrad_service_ready.
type serviceCollector struct {
	status func() []service.Status
}

func (c serviceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- serviceReadyDesc }

func (c serviceCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.status() {
		v := 0.0
		if st.State == service.StateReady {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(serviceReadyDesc, prometheus.GaugeValue, v, st.Name)
	}
}
