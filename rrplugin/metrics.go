package rrplugin

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the plugin's own series, served by RoadRunner's metrics
// plugin (which collects every plugin with MetricsCollector) under the
// rr_kvnode_ prefix, as the redis driver's are under rr_redis_.
type metrics struct {
	calls     *prometheus.CounterVec
	errors    *prometheus.CounterVec
	failovers *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	active    *prometheus.GaugeVec
}

func newMetrics() *metrics {
	const ns, sub = "rr", "kvnode"
	return &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "calls_total",
			Help: "Storage calls made by RoadRunner's kv plugin to the kvnode driver.",
		}, []string{"storage", "method"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Storage calls that failed, by kind: bad_request, no_such_storage, refused, no_leader, unreachable, outcome_unknown, timeout, closed.",
		}, []string{"storage", "method", "kind"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "failovers_total",
			Help: "Times a call that provably did nothing (node unreachable, or without a leader) was sent to another node.",
		}, []string{"storage"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "call_duration_seconds",
			Help:    "Duration of storage calls, failovers included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"storage", "method"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "active_node",
			Help: "1 for the node address calls go to now, 0 for the others.",
		}, []string{"addr"}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.calls, m.errors, m.failovers, m.duration, m.active}
}

// methodMetrics are one storage's series for one method, resolved once so
// that a call does not hash its labels.
type methodMetrics struct {
	calls    prometheus.Counter
	duration prometheus.Observer
	errors   func(kind string) prometheus.Counter
}

func (m *metrics) forMethod(storage, method string) methodMetrics {
	return methodMetrics{
		calls:    m.calls.WithLabelValues(storage, method),
		duration: m.duration.WithLabelValues(storage, method),
		errors: func(kind string) prometheus.Counter {
			return m.errors.WithLabelValues(storage, method, kind)
		},
	}
}
