package harness

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Summary renders the one-screen report of a run.
func (r *Result) Summary(outDir string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	count := map[Status]int{}
	kinds := map[string]int{}
	byWorkload := map[string]int{}
	for _, op := range r.Ops {
		if op.Final {
			continue
		}
		count[op.Status]++
		byWorkload[op.Workload+" "+op.F]++
		if op.ErrKind != "" {
			kinds[op.ErrKind+"/"+string(op.Status)]++
		}
	}
	p("kvnode jepsen: %s cluster, %s of workload", r.Cluster, r.Duration.Round(time.Second))
	p("operations: %d  ok %d  failed %d  unknown outcome %d  (+%d final reads)", count[StatusOK]+count[StatusFail]+count[StatusInfo], count[StatusOK], count[StatusFail], count[StatusInfo], len(r.Ops)-count[StatusOK]-count[StatusFail]-count[StatusInfo])
	p("  by kind: %s", joinCounts(byWorkload))
	p("failures by kind (kind/status): %s", joinCounts(kinds))
	faults := map[string]int{}
	var failed []string
	for _, f := range r.Faults {
		if f.Err != "" {
			failed = append(failed, fmt.Sprintf("%s %s: %s", f.Kind, f.Node, f.Err))
			continue
		}
		k := f.Kind
		if f.Leader {
			k += "(leader)"
		}
		faults[k]++
	}
	p("faults injected: %d  %s", len(r.Faults)-len(failed), joinCounts(faults))
	for _, f := range failed[:min(len(failed), 3)] {
		p("  fault not injected: %s", f)
	}
	removed := 0
	for _, f := range r.Faults {
		if f.Kind == NemesisReplace && strings.HasPrefix(f.Note, "removed") && strings.Contains(f.Note, "voter again") {
			removed++
		}
	}
	if removed > 0 {
		p("  remove: %d nodes reaped from raft and re-joined empty as voters (faults.json has the timings)", removed)
	}
	if r.SkippedNote != "" {
		p("  note: %s", r.SkippedNote)
	}
	p("checks (%s):", r.CheckTime.Round(time.Millisecond))
	p("  linearizability (porcupine, *_lin storages): %d registers/groups, %d timed out (a timeout is an anomaly)", r.Subjects, r.TimedOut)
	if r.Diverged {
		p("  convergence: the nodes still disagreed after %s: no final state, lost writes not checked", r.Converged.Round(time.Second))
	} else {
		p("  convergence: all nodes agreed on %d keys (%d present) after %s; no acknowledged write lost unless listed", r.KeysRead, r.FinalKeys, r.Converged.Round(time.Millisecond))
	}
	if r.StatesAgree {
		p("  state: every node's snapshot has the same content hash per storage at the same index")
	}
	p("  ttl: %d reads checked against deadlines", r.TTLReads)
	if e := r.Events; e != nil {
		p("  evictions (%s, from every node's event log): %d recorded naming %d keys, %d of keys the evict workload checks, %d reads found such a key gone after a set;",
			e.Storage, len(e.Evictions)-e.Gaps, e.Evicted, r.Evict.Evicted, r.Evict.AbsentAfterSet)
		p("    %d log entries of it seen, %d unseen ranges taken as \"any key may have gone\"; %d event polls, %d failed", e.Entries, e.Gaps, e.Polls, e.Errors)
	}
	p("  coverage, successful reads / acknowledged writes per workload (in-run, final reads excluded):")
	workloads := r.Workloads
	if workloads == nil {
		workloads = basicWorkloads
	}
	want := coverageWanted(Storages, workloads)
	for _, st := range slices.Sorted(maps.Keys(want)) {
		var parts []string
		for _, w := range append(slices.Clone(AllWorkloads), WorkloadFill) {
			if _, ok := want[st][w]; !ok {
				continue
			}
			c := r.Coverage[st][w]
			parts = append(parts, fmt.Sprintf("%s %d/%d", w, c.ReadsOK, c.WritesOK))
		}
		p("    %-16s %s", st, strings.Join(parts, "  "))
	}
	byCheck := map[string]int{}
	for _, a := range r.Anomalies {
		byCheck[a.Check]++
	}
	p("anomalies: %d  %s", len(r.Anomalies), joinCounts(byCheck))
	for _, a := range r.Anomalies[:min(len(r.Anomalies), 5)] {
		p("  %s: %s", a.Check, a.Detail)
		if a.Visualization != "" {
			p("    see %s", a.Visualization)
		}
	}
	if outDir != "" {
		p("history: %s/history.jsonl  faults: %s/faults.json", outDir, outDir)
	}
	return b.String()
}

func joinCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}
