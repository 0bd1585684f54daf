package ops

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// latencyBuckets span an in-memory call (tens of µs) to a write waiting on
// a slow quorum (seconds).
var latencyBuckets = []float64{
	.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10,
}

// Options configures Metrics.
type Options struct {
	// Storages are the configured storage names; calls naming another one
	// are counted under storage="".
	Storages []string
	// Classify names the kind of a failed call's error for
	// kvnode_rpc_errors_total; nil counts every error as "other".
	Classify func(error) string
	// Version goes into kvnode_build_info.
	Version string
}

// Metrics holds kvnode's Prometheus metrics. It implements rpc.Observer
// (ObserveCall) and fsm.Observer (ObserveApply, ObserveAppliedEntry,
// ObserveSnapshot, ObserveRestore); its methods are safe for concurrent
// use.
type Metrics struct {
	reg      *prometheus.Registry
	classify func(error) string
	storages map[string]bool
	state    atomic.Pointer[func() State]
	// series caches the request counter and histogram of each method and
	// storage: looking them up by labels costs more than updating them.
	series sync.Map // seriesKey -> *callSeries

	rpcRequests  *prometheus.CounterVec
	rpcDuration  *prometheus.HistogramVec
	rpcErrors    *prometheus.CounterVec
	fsmApply     prometheus.Histogram
	fsmEntries   prometheus.Counter
	raftApplyLat prometheus.Histogram
	snapshots    *prometheus.CounterVec
	snapshotTime prometheus.Histogram
	restores     *prometheus.CounterVec
}

// NewMetrics builds the registry with every kvnode metric, the Go runtime
// and the process collectors.
func NewMetrics(o Options) *Metrics {
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		classify: o.Classify,
		storages: map[string]bool{},
	}
	for _, s := range o.Storages {
		m.storages[s] = true
	}
	m.rpcRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kvnode_rpc_requests_total", Help: "RPC calls served, by method and storage.",
	}, []string{"method", "storage"})
	m.rpcDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kvnode_rpc_request_duration_seconds", Help: "Time to serve an RPC call, by method and storage.",
		Buckets: latencyBuckets,
	}, []string{"method", "storage"})
	m.rpcErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kvnode_rpc_errors_total", Help: "RPC calls that failed, by method, storage and kind of error.",
	}, []string{"method", "storage", "kind"})
	m.fsmApply = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "kvnode_fsm_apply_duration_seconds", Help: "Time the state machine took to apply one batch of log entries.",
		Buckets: latencyBuckets,
	})
	m.fsmEntries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kvnode_fsm_applied_entries_total", Help: "Log entries the state machine applied.",
	})
	m.raftApplyLat = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kvnode_raft_apply_latency_seconds",
		Help:    "Time from the leader appending a command to this node applying it (on followers this includes clock skew).",
		Buckets: latencyBuckets,
	})
	m.snapshots = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kvnode_snapshots_total", Help: "Raft snapshots persisted, by result (ok, error).",
	}, []string{"result"})
	m.snapshotTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "kvnode_snapshot_duration_seconds", Help: "Time to persist one raft snapshot.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	})
	m.restores = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kvnode_snapshot_restores_total", Help: "Snapshots restored into the state machine (installed from the leader, at start, or backups), by result.",
	}, []string{"result"})
	for _, r := range []string{"ok", "error"} {
		m.snapshots.WithLabelValues(r)
		m.restores.WithLabelValues(r)
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kvnode_build_info", Help: "Always 1; the version label says which kvnode runs.",
		ConstLabels: prometheus.Labels{"version": o.Version},
	})
	build.Set(1)
	m.reg.MustRegister(
		m.rpcRequests, m.rpcDuration, m.rpcErrors,
		m.fsmApply, m.fsmEntries, m.raftApplyLat,
		m.snapshots, m.snapshotTime, m.restores,
		build, stateCollector{m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is the private registry /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetState installs the function read at every scrape for the gauges of
// raft, storages and gossip. Without it those metrics are absent.
func (m *Metrics) SetState(f func() State) { m.state.Store(&f) }

func (m *Metrics) readState() (State, bool) {
	f := m.state.Load()
	if f == nil {
		return State{}, false
	}
	return (*f)(), true
}

type seriesKey struct{ method, storage string }

type callSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// ObserveCall implements rpc.Observer.
func (m *Metrics) ObserveCall(method, storage string, elapsed time.Duration, err error) {
	if !m.storages[storage] {
		storage = ""
	}
	key := seriesKey{method, storage}
	v, ok := m.series.Load(key)
	if !ok {
		v, _ = m.series.LoadOrStore(key, &callSeries{
			requests: m.rpcRequests.WithLabelValues(method, storage),
			duration: m.rpcDuration.WithLabelValues(method, storage),
		})
	}
	cs := v.(*callSeries)
	cs.requests.Inc()
	cs.duration.Observe(elapsed.Seconds())
	if err != nil {
		kind := "other"
		if m.classify != nil {
			kind = m.classify(err)
		}
		m.rpcErrors.WithLabelValues(method, storage, kind).Inc()
	}
}

// ObserveApply implements fsm.Observer.
func (m *Metrics) ObserveApply(entries int, elapsed time.Duration) {
	m.fsmApply.Observe(elapsed.Seconds())
	m.fsmEntries.Add(float64(entries))
}

// ObserveAppliedEntry implements fsm.Observer.
func (m *Metrics) ObserveAppliedEntry(sinceAppended time.Duration) {
	m.raftApplyLat.Observe(sinceAppended.Seconds())
}

// ObserveSnapshot implements fsm.Observer.
func (m *Metrics) ObserveSnapshot(elapsed time.Duration, err error) {
	m.snapshots.WithLabelValues(result(err)).Inc()
	m.snapshotTime.Observe(elapsed.Seconds())
}

// ObserveRestore implements fsm.Observer.
func (m *Metrics) ObserveRestore(_ time.Duration, err error) {
	m.restores.WithLabelValues(result(err)).Inc()
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}
