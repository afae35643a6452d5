package dns

import (
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/pkg/ratelimit"
)

// metrics counts every query by type and rcode and times it. The counters are made
// up front and indexed, so a query costs two array reads, an atomic add and one
// histogram observation, with no label lookup.
type metrics struct {
	requests [len(metricTypes) + 1][len(metricRcodes) + 1]prometheus.Counter
	duration prometheus.Histogram
	limited  prometheus.Counter
	evicted  prometheus.Counter // clients the rate limit forgot to make room
	shed     prometheus.Counter // queries dropped while the process was overloaded
	// The answer cache: plain queries answered from it, and those it did not hold.
	cacheHits, cacheMisses prometheus.Counter
	// DNSSEC: RRsets signed anew, signed from the cache, and left unsigned (no key yet,
	// or signing paused with no signature kept).
	sigsMade, sigsCached, sigsMissing prometheus.Counter
}

// The types and rcodes with a series of their own; the rest count as "other".
var (
	metricTypes  = [...]uint16{dns.TypeA, dns.TypeAAAA, dns.TypePTR, dns.TypeCNAME, dns.TypeSRV, dns.TypeTXT, dns.TypeMX, dns.TypeNS, dns.TypeSOA, dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR}
	metricRcodes = [...]int{dns.RcodeSuccess, dns.RcodeNameError, dns.RcodeRefused, dns.RcodeServerFailure, dns.RcodeFormatError, dns.RcodeNotImplemented, dns.RcodeNotAuth}
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{duration: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "infrad_dns_request_duration_seconds",
		Help:    "Time from a query read to its reply, forwarded queries included.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	})}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "infrad_dns_requests_total",
		Help: "DNS queries answered, by query type and rcode.",
	}, []string{"type", "rcode"})
	for i := range len(metricTypes) + 1 {
		typ := "other"
		if i < len(metricTypes) {
			typ = dns.TypeToString[metricTypes[i]]
		}
		for j := range len(metricRcodes) + 1 {
			rc := "other"
			if j < len(metricRcodes) {
				rc = dns.RcodeToString[metricRcodes[j]]
			}
			m.requests[i][j] = requests.WithLabelValues(typ, rc)
		}
	}
	m.limited = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "infrad_dns_rate_limited_total",
		Help: "Authoritative answers not sent because their client asked faster than dns.rate_limit.",
	})
	m.evicted = ratelimit.Evictions("dns")
	m.shed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "infrad_dns_shed_total",
		Help: "Queries dropped unanswered because the workers for queries that wait (forwarded names, UPDATEs) and their queue were full, and TCP connections closed past the bound of connections at once.",
	})
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "infrad_dns_answer_cache_total",
		Help: "Plain UDP queries answered from the answer cache (hit), and those it did not hold (miss: names outside the zones, answers not kept yet, or none kept while signing is paused).",
	}, []string{"result"})
	m.cacheHits, m.cacheMisses = cache.WithLabelValues("hit"), cache.WithLabelValues("miss")
	sigs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "infrad_dnssec_signatures_total",
		Help: "RRsets answered signed (made: signed for this answer; cached: a signature kept), and left unsigned (missing: no key yet, or signing paused with none kept).",
	}, []string{"result"})
	m.sigsMade, m.sigsCached, m.sigsMissing = sigs.WithLabelValues("made"), sigs.WithLabelValues("cached"), sigs.WithLabelValues("missing")
	reg.MustRegister(requests, m.duration, m.limited, m.evicted, m.shed, cache, sigs)
	return m
}

func (m *metrics) observe(qtype uint16, rcode int, d time.Duration) {
	i := len(metricTypes)
	for k, t := range metricTypes {
		if t == qtype {
			i = k
			break
		}
	}
	j := len(metricRcodes)
	for k, r := range metricRcodes {
		if r == rcode {
			j = k
			break
		}
	}
	m.requests[i][j].Inc()
	m.duration.Observe(d.Seconds())
}
