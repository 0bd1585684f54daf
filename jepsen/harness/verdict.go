package harness

import (
	"slices"
	"time"
)

// CheckOptions configures the checks of a history.
type CheckOptions struct {
	// TTLSkew is the clock skew bound of the TTL check.
	TTLSkew time.Duration
	// LinTimeout is porcupine's budget over all subjects.
	LinTimeout time.Duration
	// OutDir receives porcupine's HTML for failing subjects ("": none).
	OutDir string
	// Storages must each have successful reads and acknowledged writes of
	// every workload (CheckCoverage).
	Storages []string
	// Faults are the run's faults: clock offsets widen the TTL bound,
	// restarts excuse a node for forgetting what it acknowledged to a
	// local read.
	Faults []Fault
	// Workloads are those the run ran (nil: the basic three), for
	// coverage.
	Workloads []string
	// Evictions are the cluster's recorded evictions (EventFollower): the
	// only way a key of the bounded storage may become absent unasked.
	Evictions []Eviction
}

// Verdict is what the history checks found.
type Verdict struct {
	Anomalies []Anomaly
	Lin       LinResult
	TTLReads  int
	Coverage  map[string]map[string]Coverage
	// Evict is what the evict workload gave its checks (when it ran).
	Evict EvictCoverage
}

// CheckHistory runs every check that looks only at the history and the
// converged final state: linearizability of the linearizable storages,
// reads every storage could have served, torn groups, lost writes, TTL
// deadlines and coverage; on the bounded storage keys may also leave by a
// recorded eviction. A nil final state (the nodes never agreed, an
// anomaly of its own) skips the lost-write check, which would otherwise
// take every key for absent.
func CheckHistory(ops []Op, final map[string]map[string]string, o CheckOptions) Verdict {
	var v Verdict
	x := indexWrites(ops, o.Evictions)
	v.Lin = CheckLinearizable(ops, o.Evictions, o.LinTimeout, o.OutDir)
	v.Anomalies = append(v.Anomalies, v.Lin.Anomalies...)
	v.Anomalies = append(v.Anomalies, CheckReads(ops, x)...)
	v.Anomalies = append(v.Anomalies, CheckTorn(ops)...)
	if final != nil {
		v.Anomalies = append(v.Anomalies, CheckLostWrites(ops, final, x)...)
	}
	var ttl []Anomaly
	v.TTLReads, ttl = CheckTTL(ops, o.TTLSkew, o.Faults)
	v.Anomalies = append(v.Anomalies, ttl...)
	var cov []Anomaly
	v.Coverage, cov = CheckCoverage(ops, o.Storages, o.Workloads)
	v.Anomalies = append(v.Anomalies, cov...)
	if slices.Contains(o.Workloads, WorkloadEvict) {
		v.Evict, cov = evictCoverage(ops, o.Evictions)
		v.Anomalies = append(v.Anomalies, cov...)
	}
	return v
}
