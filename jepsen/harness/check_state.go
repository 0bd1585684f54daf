package harness

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// writeIndex holds every write of a history by storage and key, whatever
// its outcome, so that any value read can be traced to the write that
// could have produced it. Filler keys (never read) are left out; the
// evictions, the cluster's own removals, explain absent keys of the
// bounded storage.
type writeIndex struct {
	byKey     map[string][]*Op // storage|key -> sets and deletes, in history order
	ttl       map[string]bool  // storage|key of the TTL workload's keys
	evictions []Eviction
}

func indexWrites(ops []Op, evictions []Eviction) writeIndex {
	x := writeIndex{byKey: map[string][]*Op{}, ttl: map[string]bool{}, evictions: evictions}
	for i := range ops {
		op := &ops[i]
		if op.Workload == WorkloadFill {
			continue
		}
		for _, k := range op.Keys {
			id := op.Storage + "|" + k
			if op.Workload == "ttl" {
				x.ttl[id] = true
			}
			if op.F == "set" || op.F == "del" {
				x.byKey[id] = append(x.byKey[id], op)
			}
		}
	}
	return x
}

// source finds a set of value to key that may have been applied and was
// invoked before the read returned (at before). It returns that write, or
// nil and why no write explains the value.
func (x writeIndex) source(storage, key, value string, before int64) (*Op, string) {
	var failed, late *Op
	for _, w := range x.byKey[storage+"|"+key] {
		if w.F != "set" || w.Value != value {
			continue
		}
		switch {
		case w.Status == StatusFail:
			failed = w
		case w.Invoke >= before:
			late = w
		default:
			return w, ""
		}
	}
	switch {
	case failed != nil:
		return nil, fmt.Sprintf("written only by op %d, which failed (%s: not applied)", failed.ID, failed.ErrKind)
	case late != nil:
		return nil, fmt.Sprintf("written only by op %d, invoked %s after the read returned", late.ID, time.Duration(late.Invoke-before))
	}
	return nil, "never written"
}

// CheckReads holds every successful read, on every storage and of every
// workload (final reads included), to one rule: a value read must have
// been written by a set that may have been applied (not failed) and that
// began before the read returned. A local storage may serve old values,
// never invented ones. Values are unique, so a read names its write.
func CheckReads(ops []Op, x writeIndex) []Anomaly {
	var out []Anomaly
	for _, op := range ops {
		if op.F != "get" || op.Status != StatusOK {
			continue
		}
		for _, k := range op.Keys {
			v, present := op.Read[k]
			if !present {
				continue
			}
			if _, why := x.source(op.Storage, k, v, op.Complete); why != "" {
				out = append(out, Anomaly{Check: "read", Detail: fmt.Sprintf("op %d on %s %s %s: read %q, %s", op.ID, op.Node, op.Storage, k, v, why)})
			}
		}
	}
	return out
}

// CheckTorn reports group reads whose keys disagree: a multi-key Set or
// Delete was seen half applied.
func CheckTorn(ops []Op) []Anomaly {
	var out []Anomaly
	for _, op := range ops {
		if op.F != "get" || op.Status != StatusOK || op.Workload != "group" {
			continue
		}
		if _, torn := groupValue(op); torn {
			out = append(out, Anomaly{Check: "atomic-group", Detail: fmt.Sprintf("op %d on %s %s read %v", op.ID, op.Node, op.Storage, op.Read)})
		}
	}
	return out
}

// CheckLostWrites compares each key's final value (read after the cluster
// healed and converged) with the writes, on every storage: the final value
// must come from a set that may have been applied and that no acknowledged
// write or delete follows in real time. Absent is explained by a delete no
// acknowledged set follows, by a recorded eviction no acknowledged set
// follows, or by no acknowledged set at all. Every key the run touched is
// checked, including keys whose writes all failed and keys that were only
// read; TTL keys are CheckTTL's.
func CheckLostWrites(ops []Op, final map[string]map[string]string, x writeIndex) []Anomaly {
	var out []Anomaly
	ids := map[string]bool{}
	for id := range x.byKey {
		ids[id] = true
	}
	for st, m := range final {
		for k := range m {
			ids[st+"|"+k] = true
		}
	}
	end := func(w *Op) int64 {
		if w.Status == StatusInfo {
			return math.MaxInt64
		}
		return w.Complete
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if x.ttl[id] {
			continue
		}
		storage, key := splitID(id)
		ws := x.byKey[id]
		followedByAck := func(w *Op, f string) bool {
			for _, y := range ws {
				if y.Status == StatusOK && y.Invoke > end(w) && (f == "" || y.F == f) {
					return true
				}
			}
			return false
		}
		if got, present := final[storage][key]; present {
			w, why := x.source(storage, key, got, math.MaxInt64)
			switch {
			case w == nil:
				out = append(out, Anomaly{Check: "lost-write", Detail: fmt.Sprintf("%s %s: final value %q, %s", storage, key, got, why)})
			case followedByAck(w, ""):
				out = append(out, Anomaly{Check: "lost-write", Detail: fmt.Sprintf("%s %s: final value %q (op %d), but an acknowledged write started after it completed", storage, key, got, w.ID)})
			}
			continue
		}
		explained, ackedSet := false, false
		for _, y := range ws {
			ackedSet = ackedSet || (y.Status == StatusOK && y.F == "set")
			if y.F == "del" && y.Status != StatusFail && !followedByAck(y, "set") {
				explained = true
			}
		}
		if ackedSet && !explained && !evictionExplains(storage, key, ws, x.evictions) {
			out = append(out, Anomaly{Check: "lost-write", Detail: fmt.Sprintf("%s %s: absent at the end, but an acknowledged set follows every delete and recorded eviction", storage, key)})
		}
	}
	return out
}

func splitID(id string) (storage, key string) {
	storage, key, _ = strings.Cut(id, "|")
	return storage, key
}

// basicWorkloads run on every storage of Storages.
var basicWorkloads = []string{WorkloadRegister, WorkloadGroup, WorkloadTTL}

// Coverage counts one storage's in-run operations of one workload (final
// reads excluded).
type Coverage struct {
	Reads, ReadsOK, Writes, WritesOK int
}

// coverageWanted lists, per storage, the workloads a run of workloads
// must have exercised, and whether each needs reads (filler is never read).
func coverageWanted(storages, workloads []string) map[string]map[string]bool {
	want := map[string]map[string]bool{}
	for _, w := range basicWorkloads {
		if !slices.Contains(workloads, w) {
			continue
		}
		for _, st := range storages {
			if want[st] == nil {
				want[st] = map[string]bool{}
			}
			want[st][w] = true
		}
	}
	if slices.Contains(workloads, WorkloadEvict) {
		want[BoundedStorage] = map[string]bool{WorkloadEvict: true, WorkloadFill: false}
	}
	return want
}

// CheckCoverage counts reads and writes per storage and workload and
// fails a run in which a storage had no successful read (or no
// acknowledged write) of some workload it ran: every check of it would
// have passed for want of anything to check. nil workloads are the basic
// three.
func CheckCoverage(ops []Op, storages, workloads []string) (map[string]map[string]Coverage, []Anomaly) {
	if workloads == nil {
		workloads = basicWorkloads
	}
	want := coverageWanted(storages, workloads)
	cov := map[string]map[string]Coverage{}
	for st := range want {
		cov[st] = map[string]Coverage{}
	}
	for _, op := range ops {
		if op.Final || cov[op.Storage] == nil {
			continue
		}
		c := cov[op.Storage][op.Workload]
		ok := op.Status == StatusOK
		if op.F == "get" {
			c.Reads++
			c.ReadsOK += b2i(ok)
		} else {
			c.Writes++
			c.WritesOK += b2i(ok)
		}
		cov[op.Storage][op.Workload] = c
	}
	var out []Anomaly
	for _, st := range slices.Sorted(maps.Keys(want)) {
		for _, w := range slices.Sorted(maps.Keys(want[st])) {
			c := cov[st][w]
			if (want[st][w] && c.ReadsOK == 0) || c.WritesOK == 0 {
				out = append(out, Anomaly{Check: "coverage", Detail: fmt.Sprintf(
					"%s %s: %d successful reads of %d, %d acknowledged writes of %d: nothing to check", st, w, c.ReadsOK, c.Reads, c.WritesOK, c.Writes)})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Detail < out[j].Detail })
	return cov, out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
