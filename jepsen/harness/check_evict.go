package harness

import (
	"fmt"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The evict workload runs registers on the bounded storage, where a key may
// also vanish without a client asking: when the leader evicts it. The model
// allows exactly that and nothing more: a key may become absent only
// inside the window of an eviction of that key the cluster recorded
// (evictions.go). An eviction is compare-and-delete (it removes the key
// only if it still holds what the leader saw, so a key written again in
// between survives), and the event does not say what the leader saw: in
// the model an eviction leaves the key absent or as it was.

// Workload names. The first three run on Storages; evict (registers) and
// fill (unique filler keys that keep it full) on BoundedStorage.
const (
	WorkloadRegister = "register"
	WorkloadGroup    = "group"
	WorkloadTTL      = "ttl"
	WorkloadEvict    = "evict"
	WorkloadFill     = "fill"
)

// AllWorkloads are what -workloads=all runs.
var AllWorkloads = []string{WorkloadRegister, WorkloadGroup, WorkloadTTL, WorkloadEvict}

// evictModel is the register of the bounded storage: registerModel plus
// "evict", which may or may not remove the key. The power-set construction
// keeps both outcomes.
var evictModel = (&porcupine.NondeterministicModel{
	Init: func() []any { return []any{regValue{}} },
	Step: func(state, input, output any) []any {
		s, in := state.(regValue), input.(regInput)
		switch in.f {
		case "set":
			return []any{regValue{v: in.value, ok: true}}
		case "del":
			return []any{regValue{}}
		case "evict":
			return []any{s, regValue{}}
		default:
			if output.(regOutput).read == s {
				return []any{s}
			}
			return nil
		}
	},
	Equal: func(a, b any) bool { return a == b },
	DescribeOperation: func(input, output any) string {
		if input.(regInput).f == "evict" {
			return "evict() (the cluster's)"
		}
		return registerModel.DescribeOperation(input, output)
	},
	DescribeState: func(s any) string { return s.(regValue).String() },
}).ToModel()

// evictionLane is the evictions' row in porcupine's visualization (the
// workers' are their ids).
const evictionLane = 1000

// evictionOps are the evictions that may have removed subject s's key, as
// porcupine operations over their windows. Evictions that end before the
// key's first operation or begin after its last change nothing (absent
// stays absent; no read follows) and are left out.
func evictionOps(s string, hist []Op, evictions []Eviction) []porcupine.Operation {
	if len(hist) == 0 || len(evictions) == 0 {
		return nil
	}
	storage, key, _ := strings.Cut(s, "|")
	first, last := hist[0].Invoke, hist[0].Complete
	for _, op := range hist {
		first, last = min(first, op.Invoke), max(last, op.Complete)
	}
	var out []porcupine.Operation
	for _, e := range evictions {
		if !e.covers(storage, key) || e.Upper < first || e.Lower > last {
			continue
		}
		// An unseen stretch of the log with no known end may take
		// effect any time after it began, as a write of unknown outcome.
		out = append(out, porcupine.Operation{ClientId: evictionLane, Call: e.Lower, Return: min(e.Upper, last+int64(time.Hour)),
			Input: regInput{f: "evict"}, Output: regOutput{}})
	}
	return out
}

// evictionExplains reports whether an eviction of key may have come after
// every acknowledged set of it (ws: the key's writes): then it explains
// the key's absence at the end.
func evictionExplains(storage, key string, ws []*Op, evictions []Eviction) bool {
	for _, e := range evictions {
		if !e.covers(storage, key) {
			continue
		}
		followed := false
		for _, y := range ws {
			followed = followed || (y.Status == StatusOK && y.F == "set" && y.Invoke > e.Upper)
		}
		if !followed {
			return true
		}
	}
	return false
}

// EvictCoverage is what the evict workload gave its checks to bite on.
type EvictCoverage struct {
	// Evicted counts the recorded evictions of keys the workload reads
	// and writes (most evictions take filler).
	Evicted int
	// AbsentAfterSet counts the in-run reads that found such a key absent
	// when the latest write to complete before the read began was an
	// acknowledged set, with no other write of it in flight: absences
	// that only an eviction explains.
	AbsentAfterSet int
}

// evictCoverage fails a run in which the evict workload had nothing to
// check: no recorded eviction of a key it reads and writes (only filler
// would have gone), or no read that found such a key gone after a set.
func evictCoverage(ops []Op, evictions []Eviction) (EvictCoverage, []Anomaly) {
	var c EvictCoverage
	byKey := map[string][]*Op{}
	for i := range ops {
		if op := &ops[i]; op.Workload == WorkloadEvict && op.Storage == BoundedStorage && !op.Final {
			byKey[op.Keys[0]] = append(byKey[op.Keys[0]], op)
		}
	}
	for _, e := range evictions {
		for _, k := range e.Keys {
			if e.Storage == BoundedStorage && byKey[k] != nil {
				c.Evicted++
			}
		}
	}
	for _, hist := range byKey {
		for _, r := range hist {
			if _, present := r.Read[r.Keys[0]]; r.F != "get" || r.Status != StatusOK || present {
				continue
			}
			var last *Op
			inFlight := false
			for _, w := range hist {
				switch {
				case w.F == "get" || w.Status == StatusFail:
				case w.Status == StatusOK && w.Complete < r.Invoke:
					if last == nil || w.Complete > last.Complete {
						last = w
					}
				default:
					inFlight = inFlight || w.Invoke < r.Complete
				}
			}
			if last != nil && last.F == "set" && !inFlight {
				c.AbsentAfterSet++
			}
		}
	}
	var out []Anomaly
	if c.Evicted == 0 || c.AbsentAfterSet == 0 {
		out = append(out, Anomaly{Check: "coverage", Detail: fmt.Sprintf(
			"%s evict: %d evictions recorded, %d of keys the workload reads, %d reads found one gone after a set: nothing to check",
			BoundedStorage, len(evictions), c.Evicted, c.AbsentAfterSet)})
	}
	return c, out
}
