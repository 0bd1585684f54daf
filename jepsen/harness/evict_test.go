package harness

import (
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/fsm"
)

// The evict workload's mutation tests: histories of a bounded storage that
// loses keys in ways the cluster never recorded, or serves what an
// eviction and a rewrite should have replaced, and nodes that end apart.
// Each must be rejected, while the same history with the eviction recorded
// (or the nodes alike) passes.

// eop is an acknowledged op of the evict workload on the bounded storage.
func eop(f, key, value string, invoke, complete int64, opts ...func(*Op)) Op {
	return mop(f, BoundedStorage, key, value, invoke, complete, append([]func(*Op){func(op *Op) { op.Workload = WorkloadEvict }}, opts...)...)
}

// evicted is a recorded eviction of keys in [lower, upper].
func evicted(lower, upper int64, keys ...string) Eviction {
	return Eviction{Storage: BoundedStorage, Keys: keys, Lower: lower, Upper: upper, Note: "max_memory"}
}

// healthyEvict pads healthy() with what the evict workload's coverage
// wants: a filler set and a checked key that is set, evicted and then
// read absent.
func healthyEvict(ops ...Op) []Op {
	const t = 20_000_000
	ops = append(ops, eop("set", "ecover", "ec", t, t+10), eop("get", "ecover", absent, t+40, t+50),
		mop("set", BoundedStorage, "fcover", "fc", t, t+10, func(op *Op) { op.Workload = WorkloadFill }))
	return healthy(ops...)
}

func evictOpts(evictions ...Eviction) CheckOptions {
	o := checkOpts()
	o.Workloads = AllWorkloads
	o.Evictions = append([]Eviction{evicted(20_000_020, 20_000_030, "ecover")}, evictions...)
	return o
}

// finalEvict is the converged state with the bounded storage's keys.
func finalEvict(kv ...string) map[string]map[string]string {
	f := finalOf()
	f[BoundedStorage] = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		f[BoundedStorage][kv[i]] = kv[i+1]
	}
	return f
}

func TestMutationEvictLegalHistoriesAreClean(t *testing.T) {
	cases := []struct {
		name  string
		ops   []Op
		evs   []Eviction
		final map[string]map[string]string
	}{
		{"absent after a recorded eviction", []Op{eop("set", "k", "a", 0, 10), eop("get", "k", "a", 20, 30), eop("get", "k", absent, 60, 70)},
			[]Eviction{evicted(35, 50, "k")}, finalEvict()},
		// Compare-and-delete: the key was written again after the leader
		// chose it, so the eviction removed nothing.
		{"an eviction may change nothing", []Op{eop("set", "k", "a", 0, 10), eop("set", "k", "b", 30, 40), eop("get", "k", "b", 60, 70)},
			[]Eviction{evicted(20, 50, "k")}, finalEvict("k", "b")},
		{"eviction concurrent with a read", []Op{eop("set", "k", "a", 0, 10), eop("get", "k", absent, 20, 30), eop("get", "k", absent, 40, 50)},
			[]Eviction{evicted(15, 45, "k")}, finalEvict()},
		{"set again after the eviction", []Op{eop("set", "k", "a", 0, 10), eop("get", "k", absent, 30, 40), eop("set", "k", "b", 50, 60), eop("get", "k", "b", 70, 80)},
			[]Eviction{evicted(15, 25, "k")}, finalEvict("k", "b")},
		// Log entries no node's reader saw: any key may have gone then.
		{"absent inside an unseen stretch of the log", []Op{eop("set", "k", "a", 0, 10), eop("get", "k", absent, 60, 70)},
			[]Eviction{{Storage: BoundedStorage, All: true, Lower: 20, Upper: 50}}, finalEvict()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantClean(t, healthyEvict(tc.ops...), tc.final, evictOpts(tc.evs...))
		})
	}
}

// A key absent though the cluster recorded no eviction of it: only of
// another key, in the same window.
func TestMutationEvictAbsentWithoutEviction(t *testing.T) {
	ops := healthyEvict(eop("set", "k", "a", 0, 10), eop("get", "k", "a", 20, 30), eop("get", "k", absent, 60, 70))
	o := evictOpts(evicted(35, 50, "other"))
	wantAnomaly(t, ops, finalEvict("k", "a"), o, "linearizability", BoundedStorage+"|k")
	// ... and at the end: absent, with an acknowledged set and no eviction.
	ops = healthyEvict(eop("set", "k", "a", 0, 10))
	wantAnomaly(t, ops, finalEvict(), o, "lost-write", BoundedStorage, "k", "recorded eviction")
}

// An eviction of the key was recorded, but not where it could explain
// the absence: it began after the read returned, or ended before the set
// the read should have seen.
func TestMutationEvictAbsentOutsideTheEvictionsWindow(t *testing.T) {
	ops := healthyEvict(eop("set", "k", "a", 0, 10), eop("get", "k", absent, 20, 30))
	wantAnomaly(t, ops, finalEvict(), evictOpts(evicted(40, 50, "k")), "linearizability", BoundedStorage+"|k")
	ops = healthyEvict(eop("set", "k", "a", 0, 10), eop("set", "k", "b", 30, 40), eop("get", "k", absent, 60, 70))
	wantAnomaly(t, ops, finalEvict(), evictOpts(evicted(15, 25, "k")), "linearizability", BoundedStorage+"|k")
	// The final state alike: the key's last set began after the eviction.
	ops = healthyEvict(eop("set", "k", "a", 0, 10), eop("set", "k", "b", 30, 40))
	wantAnomaly(t, ops, finalEvict(), evictOpts(evicted(15, 25, "k")), "lost-write", BoundedStorage, "k")
}

// After an eviction and an acknowledged rewrite, a read returns the value
// the eviction took: stale.
func TestMutationEvictStaleValueAfterRewrite(t *testing.T) {
	ops := healthyEvict(eop("set", "k", "a", 0, 10), eop("get", "k", absent, 30, 40), eop("set", "k", "b", 50, 60), eop("get", "k", "a", 70, 80))
	wantAnomaly(t, ops, finalEvict("k", "b"), evictOpts(evicted(15, 25, "k")), "linearizability", BoundedStorage+"|k")
}

// A run whose evictions never touched a checked key checked nothing the
// model allows beyond plain registers.
func TestMutationEvictNothingToCheck(t *testing.T) {
	o := evictOpts()
	o.Evictions = []Eviction{evicted(20_000_020, 20_000_030, "fcover")}
	wantAnomaly(t, healthyEvict(), finalEvict(), o, "coverage", BoundedStorage, "0 of keys the workload reads")
}

// boundedStream is the snapshot of an FSM whose bounded storage holds k1
// and k2 under a 128KiB random-eviction limit, with evict applied to it.
func boundedStream(t *testing.T, evict ...string) []byte {
	t.Helper()
	mem := memory.New()
	b, err := boltdb.Open(boltdb.Config{File: filepath.Join(t.TempDir(), "b.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(); _ = mem.Close() })
	limits := drivers.Limits{MaxBytes: 128 << 10, Policy: drivers.PolicyRandom}
	ops := []drivers.Op{{Kind: drivers.OpLimit, Limits: limits},
		{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "k1", Value: []byte("v1")}, {Key: "k2", Value: []byte("v2")}}}}
	for _, k := range evict {
		ops = append(ops, drivers.Op{Kind: drivers.OpEvict, Reason: drivers.ReasonMemory,
			Victims: []drivers.Victim{{Key: k, Digest: drivers.ValueDigest([]byte("v" + k[1:]))}}})
	}
	if _, err := mem.Apply(7, ops); err != nil {
		t.Fatal(err)
	}
	f := fsm.New(map[string]drivers.Engine{BoundedStorage: mem, "boltdb_lin": b}, nil)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

// Nodes that end with different bounded storages: one applied an
// eviction the others did not. The state check restores each node's
// snapshot and compares the hashes at one index.
func TestMutationEvictNodesDifferAtTheEnd(t *testing.T) {
	kept, err := hashSnapshot(boundedStream(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gone, err := hashSnapshot(boundedStream(t, "k1"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	same, err := hashSnapshot(boundedStream(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if kept[BoundedStorage] == "" || kept[BoundedStorage] != same[BoundedStorage] {
		t.Fatalf("same bounded storage, different hashes: %v vs %v", kept, same)
	}
	fetch := digests(map[string][]*StateDigest{
		"node1": {{Index: 9, Hashes: kept}}, "node2": {{Index: 9, Hashes: same}}, "node3": {{Index: 9, Hashes: gone}}})
	err = CompareStates(t.Context(), threeNodes, fetch, 3, time.Millisecond)
	if !errors.Is(err, errStatesDiffer) || !strings.Contains(err.Error(), BoundedStorage+" at index 9") {
		t.Fatalf("err = %v, want a divergence of %s", err, BoundedStorage)
	}
	fetch = digests(map[string][]*StateDigest{
		"node1": {{Index: 9, Hashes: kept}}, "node2": {{Index: 9, Hashes: same}}, "node3": {{Index: 9, Hashes: same}}})
	if err := CompareStates(t.Context(), threeNodes, fetch, 3, time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// followerAt is an EventFollower whose run began at start.
func followerAt(start time.Time) *EventFollower {
	return newEventFollower(BoundedStorage, "", runClock{start: start}, threeNodes)
}

func rec(start time.Time, index uint64, stamp int64, op string, keys ...string) eventRecord {
	return eventRecord{Index: index, Term: 2, Time: start.Add(time.Duration(stamp)), Storage: BoundedStorage, Op: op, Keys: keys, KeyCount: len(keys)}
}

// Two nodes whose logs hold different events at one index: a node applied
// an eviction the others did not (or none at all where they did).
func TestMutationEvictEventLogsDiffer(t *testing.T) {
	start := time.Now()
	f := followerAt(start)
	page := func(evs ...eventRecord) eventsPage { return eventsPage{Events: evs, Next: 11, Applied: 10} }
	f.record("node1", 1, page(rec(start, 5, 100, "set", "k"), rec(start, 7, 200, "evict", "k")), 300)
	f.record("node2", 1, page(rec(start, 5, 100, "set", "k"), rec(start, 7, 200, "evict", "k")), 300)
	f.record("node3", 1, page(rec(start, 5, 100, "set", "k")), 300)
	rep := f.Report(nil, 0)
	if len(rep.Anomalies) != 1 || rep.Anomalies[0].Check != "convergence" || !strings.Contains(rep.Anomalies[0].Detail, "index 7") ||
		!strings.Contains(rep.Anomalies[0].Detail, "no event on node3") {
		t.Fatalf("anomalies = %v, want index 7 reported with node3 missing the eviction", rep.Anomalies)
	}
	f = followerAt(start)
	for _, n := range threeNodes {
		f.record(n, 1, page(rec(start, 5, 100, "set", "k"), rec(start, 7, 200, "evict", "k")), 300)
	}
	if rep := f.Report(nil, 0); len(rep.Anomalies) != 0 {
		t.Fatalf("alike logs reported: %v", rep.Anomalies)
	}
}

// The windows the checks rely on: from the leader's stamp, less the clock
// bound and any forward skew that can be in the stamp, to the earliest
// reply that held the eviction.
func TestEvictionWindows(t *testing.T) {
	start := time.Now()
	f := followerAt(start)
	ms := int64(time.Millisecond)
	f.record("node1", 1, eventsPage{Events: []eventRecord{rec(start, 4, 1000*ms, "evict", "a", "b")}, Next: 6, Applied: 5}, 1300*ms)
	f.record("node2", 1, eventsPage{Events: []eventRecord{rec(start, 4, 1000*ms, "evict", "a", "b")}, Next: 6, Applied: 5}, 1100*ms)
	truncated := rec(start, 8, 4000*ms, "evict", "c")
	truncated.KeyCount = 2000
	f.record("node1", 6, eventsPage{Events: []eventRecord{truncated}, Next: 9, Applied: 8}, 4100*ms)
	skew := Fault{Kind: NemesisSkew, Offset: 3 * time.Second, Start: 0, End: 500 * ms}
	rep := f.Report([]Fault{skew}, 50*time.Millisecond)
	if len(rep.Evictions) != 2 {
		t.Fatalf("evictions = %+v, want 2", rep.Evictions)
	}
	a, b := rep.Evictions[0], rep.Evictions[1]
	// The skew ended at 0.5 s, but a stamp can carry its 3 s until 3.5 s.
	if a.Lower != 1000*ms-50*ms-3000*ms || a.Upper != 1100*ms || a.All || strings.Join(a.Keys, ",") != "a,b" {
		t.Fatalf("eviction %+v, want keys a,b in [-2.05s, 1.1s]", a)
	}
	if !b.All || b.Lower != 4000*ms-50*ms || b.Upper != 4100*ms {
		t.Fatalf("eviction %+v, want any key in [3.95s, 4.1s] (2000 keys named, 1 listed)", b)
	}
	if rep.Gaps != 0 {
		t.Fatalf("gaps = %d, want none: node2 read 1-5, node1 1-8", rep.Gaps)
	}
}

// Entries that every node compacted before its reader got there become a
// wildcard: any key may have gone after the last entry seen before them
// and before the reply that said they were gone.
func TestEvictionGapsAreWildcards(t *testing.T) {
	start := time.Now()
	f := followerAt(start)
	f.record("node1", 1, eventsPage{Events: []eventRecord{rec(start, 3, 1000, "set", "k")}, Next: 5, Applied: 4}, 1100)
	f.record("node2", 1, eventsPage{Events: []eventRecord{rec(start, 3, 1000, "set", "k")}, Next: 5, Applied: 4}, 1200)
	// Entries 5-9 compacted on node1 (learnt at 3000) and on node2 (4000).
	f.record("node1", 5, eventsPage{Skipped: 5, Next: 12, Applied: 11, Events: []eventRecord{rec(start, 11, 2500, "set", "k")}}, 3000)
	f.record("node2", 5, eventsPage{Skipped: 7, Next: 12, Applied: 11}, 4000)
	rep := f.Report(nil, 10)
	if rep.Gaps != 1 || len(rep.Evictions) != 1 {
		t.Fatalf("report %+v, want one gap", rep)
	}
	g := rep.Evictions[0]
	if !g.All || g.Index != 5 || g.Lower != 1000-10 || g.Upper != 4000 {
		t.Fatalf("gap %+v, want any key in [990, 4000] from index 5", g)
	}
	if !strings.Contains(g.Note, "5-9") {
		t.Fatalf("note %q, want the entries named", g.Note)
	}
	// node3 read them: no gap.
	f.record("node3", 1, eventsPage{Next: 12, Applied: 11}, 5000)
	if rep := f.Report(nil, 10); rep.Gaps != 0 {
		t.Fatalf("gaps = %d after node3 read every entry", rep.Gaps)
	}
}

func TestClockAhead(t *testing.T) {
	s := int64(10 * time.Second)
	cases := []struct {
		f    Fault
		want time.Duration
	}{
		{Fault{Offset: 3 * time.Second, Start: 0, End: int64(8 * time.Second)}, 3 * time.Second},          // carried until 11 s
		{Fault{Offset: 3 * time.Second, Start: 0, End: int64(6 * time.Second)}, 0},                        // caught up at 9 s
		{Fault{Offset: -4 * time.Second, Start: 0, End: int64(10 * time.Second)}, 0},                      // behind: stamps are late, not early
		{Fault{Offset: 2 * time.Second, Start: int64(11 * time.Second), End: int64(12 * time.Second)}, 0}, // after the stamp
		{Fault{Offset: 2 * time.Second, Start: 0, End: int64(time.Second), Err: "heal: refused"}, 2 * time.Second},
	}
	for i, tc := range cases {
		if got := clockAhead([]Fault{tc.f}, s); got != tc.want {
			t.Errorf("case %d: clockAhead = %s, want %s", i, got, tc.want)
		}
	}
	if got := clockAhead(nil, math.MaxInt64); got != 0 {
		t.Errorf("no faults: %s", got)
	}
}
