package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kvnode/kvnode/client"
)

// Options configures a run.
type Options struct {
	Duration time.Duration
	Workload WorkloadOptions
	Nemesis  NemesisOptions
	// OutDir receives history.jsonl, faults.json, summary.txt, anomalies.txt
	// and porcupine's HTML for failing subjects.
	OutDir string
	// TTLSkew is the clock skew bound of the TTL check.
	TTLSkew time.Duration
	// CheckTimeout bounds porcupine over all subjects.
	CheckTimeout time.Duration
	Seed         uint64
	Logger       *slog.Logger
}

// Result is a run's outcome.
type Result struct {
	Cluster   string
	Duration  time.Duration
	Ops       []Op
	Faults    []Fault
	Anomalies []Anomaly
	Subjects  int // register/group histories checked by porcupine
	TimedOut  int // porcupine gave up on these (each is an anomaly)
	TTLReads  int
	Coverage  map[string]map[string]Coverage
	Converged time.Duration
	FinalKeys int // present after convergence
	// StatesAgree: every node's snapshot had the same content, storage by
	// storage, at the same index.
	StatesAgree bool
	// Diverged: the nodes never agreed on the keys' values, so there is no
	// final state and the lost-write check did not run.
	Diverged    bool
	KeysRead    int // read from every node after convergence
	CheckTime   time.Duration
	SkippedNote string
	// Workloads are the workloads the run ran.
	Workloads []string
	// Events is what the bounded storage's event log showed (evict
	// workload only); Evict what that gave the checks.
	Events *EventReport
	Evict  EvictCoverage
}

// Run drives the workload and the nemesis against c for opts.Duration,
// heals, waits for convergence and checks the history.
func Run(ctx context.Context, c Cluster, opts Options) (*Result, error) {
	opts.Workload.defaults()
	opts.Nemesis.defaults()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.TTLSkew <= 0 {
		opts.TTLSkew = 50 * time.Millisecond
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = 5 * time.Minute
	}
	if opts.Seed == 0 {
		opts.Seed = uint64(time.Now().UnixNano())
	}
	res := &Result{Cluster: c.Name()}
	kinds := opts.Nemesis.Kinds
	var skipped []string
	if c.Name() == "local" {
		kinds = slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return k == NemesisPartition || k == NemesisLeader })
		if len(kinds) != len(opts.Nemesis.Kinds) {
			skipped = append(skipped, "partition nemeses skipped: local processes share the loopback")
		}
	}
	if !c.Failpoints() {
		n := len(kinds)
		kinds = slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return NeedFailpoints[k] })
		if len(kinds) != n {
			skipped = append(skipped, "skew and slow nemeses skipped: the cluster has no failpoint endpoint")
		}
	}
	res.SkippedNote = strings.Join(skipped, "; ")
	opts.Nemesis.Kinds = kinds

	clock := runClock{start: time.Now()}
	hist := &History{}
	cl := &clients{c: c, pool: map[string]*client.Client{}}
	defer cl.close()
	runCtx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()

	budget := &opBudget{left: opts.Workload.MaxOps}
	ring := &ttlRing{}
	res.Workloads = opts.Workload.Kinds
	// The event followers outlive the workload: they stop once the checks
	// have read the final state, then catch up (drain).
	var events *EventFollower
	followCtx, stopFollowing := context.WithCancel(ctx)
	var followers sync.WaitGroup
	defer func() { stopFollowing(); followers.Wait() }()
	if slices.Contains(opts.Workload.Kinds, WorkloadEvict) {
		events = newEventFollower(BoundedStorage, c.AdminToken(), clock, c.Nodes())
		for _, n := range c.Nodes() {
			followers.Go(func() { events.follow(followCtx, c, n) })
		}
	}
	var wg sync.WaitGroup
	for i := range opts.Workload.Workers {
		w := &worker{id: i, opts: opts.Workload, clock: clock, hist: hist, cl: cl, nodes: c.Nodes(),
			ttl: ring, rng: rand.New(rand.NewPCG(opts.Seed, uint64(i))), budget: budget}
		wg.Go(func() { w.run(runCtx) })
	}
	nem := &nemesis{c: c, opts: opts.Nemesis, clock: clock, rng: rand.New(rand.NewPCG(opts.Seed, 999)), logger: opts.Logger}
	wg.Go(func() { nem.run(runCtx) })
	wg.Wait()
	res.Duration = time.Since(clock.start)
	res.Faults = nem.list()
	opts.Logger.Info("workload done; waiting for the cluster to settle", "ops", len(hist.Ops()))

	revive(ctx, c, opts.Logger)
	if err := WaitReady(ctx, c, 90*time.Second); err != nil {
		res.Anomalies = append(Crashes(ctx, c), CheckExits(c.Exits(), clock)...)
		return res, err
	}
	if err := WaitWritable(ctx, c, 90*time.Second); err != nil {
		return res, err
	}
	ops := hist.Ops()
	if err := settleTTL(ctx, clock, ops, opts.TTLSkew); err != nil {
		return res, err
	}
	final, conv, finalOps, anomalies, err := converge(ctx, c, cl, clock, ops, opts.Workload.Workers)
	if err != nil {
		return res, err
	}
	res.Converged, res.Diverged = conv, final == nil
	fetch := func(ctx context.Context, n string) (StateDigest, error) {
		return FetchState(ctx, c.Addr(n), c.AdminToken(), opts.OutDir)
	}
	if err := CompareStates(ctx, c.Nodes(), fetch, 60, 500*time.Millisecond); err != nil {
		anomalies = append(anomalies, Anomaly{Check: "convergence", Detail: "state: " + err.Error()})
	} else {
		res.StatesAgree = true
	}
	stopFollowing()
	followers.Wait()
	var evictions []Eviction
	if events != nil {
		events.drain(ctx, c, 30*time.Second)
		rep := events.Report(res.Faults, opts.TTLSkew)
		res.Events, evictions = &rep, rep.Evictions
		anomalies = append(anomalies, rep.Anomalies...)
	}
	ops = append(ops, finalOps...)
	for i := range ops {
		ops[i].ID = i
	}
	res.Ops = ops
	for _, m := range final {
		res.FinalKeys += len(m)
	}
	for _, m := range keysRead(ops) {
		res.KeysRead += len(m)
	}

	start := time.Now()
	v := CheckHistory(ops, final, CheckOptions{TTLSkew: opts.TTLSkew, LinTimeout: opts.CheckTimeout, OutDir: opts.OutDir,
		Storages: Storages, Faults: res.Faults, Workloads: opts.Workload.Kinds, Evictions: evictions})
	anomalies = append(anomalies, v.Anomalies...)
	res.Subjects, res.TimedOut, res.TTLReads, res.Coverage = v.Lin.Checked, v.Lin.TimedOut, v.TTLReads, v.Coverage
	res.Evict = v.Evict
	anomalies = append(anomalies, Crashes(ctx, c)...)
	anomalies = append(anomalies, CheckExits(c.Exits(), clock)...)
	res.CheckTime = time.Since(start)
	res.Anomalies = anomalies
	return res, nil
}

// keysRead are the keys the run touched, by storage, filler keys left
// out (nobody reads them; the state hashes cover them).
func keysRead(ops []Op) map[string]map[string]bool {
	keys := map[string]map[string]bool{}
	for _, op := range ops {
		if op.Workload == WorkloadFill {
			continue
		}
		if keys[op.Storage] == nil {
			keys[op.Storage] = map[string]bool{}
		}
		for _, k := range op.Keys {
			keys[op.Storage][k] = true
		}
	}
	return keys
}

// revive starts nodes that stopped answering on their own (crashed; the
// crash check reports why), so the final checks can run.
func revive(ctx context.Context, c Cluster, logger *slog.Logger) {
	for _, n := range c.Nodes() {
		if waitNode(ctx, c, n, 10*time.Second) == nil {
			continue
		}
		logger.Warn("node not answering after the run; starting it", "node", n)
		if err := c.Start(ctx, n); err != nil {
			logger.Warn("start", "node", n, "err", err)
		}
	}
}

// settleTTL waits until every TTL key's deadline has passed, at most a minute.
func settleTTL(ctx context.Context, clock runClock, ops []Op, skew time.Duration) error {
	var last int64
	for _, op := range ops {
		last = max(last, op.Deadline)
	}
	wait := time.Duration(last-clock.now()) + skew + 100*time.Millisecond
	if wait > time.Minute {
		wait = time.Minute
	}
	if wait > 0 && !sleepCtx(ctx, wait) {
		return ctx.Err()
	}
	return nil
}

// converge reads every key the run touched from every node until all nodes
// agree (at most 90 s). It returns the agreed state per storage, how long
// agreement took, the first node's reads as final operations for the
// checkers, and a divergence anomaly if the nodes never agreed.
func converge(ctx context.Context, c Cluster, cl *clients, clock runClock, ops []Op, worker int) (map[string]map[string]string, time.Duration, []Op, []Anomaly, error) {
	keys := keysRead(ops)
	start := time.Now()
	var diff string
	for attempt := 0; attempt < 90 && time.Since(start) < 90*time.Second; attempt++ {
		if attempt > 0 && !sleepCtx(ctx, time.Second) {
			return nil, 0, nil, nil, ctx.Err()
		}
		views := map[string]map[string]map[string]string{}
		var finalOps []Op
		ok := true
		for _, n := range c.Nodes() {
			v, fo, err := readAll(ctx, cl, clock, n, keys, worker)
			if err != nil {
				ok, diff = false, fmt.Sprintf("%s: %v", n, err)
				break
			}
			views[n] = v
			if finalOps == nil {
				finalOps = fo
			}
		}
		if !ok {
			continue
		}
		first := c.Nodes()[0]
		diff = ""
		for _, n := range c.Nodes()[1:] {
			if d := firstDiff(views[first], views[n]); d != "" {
				diff = fmt.Sprintf("%s vs %s: %s", first, n, d)
				break
			}
		}
		if diff != "" {
			continue
		}
		return views[first], time.Since(start), finalOps, nil, nil
	}
	return nil, time.Since(start), nil, []Anomaly{{Check: "convergence", Detail: "nodes still differ after 90s: " + diff}}, nil
}

func firstDiff(a, b map[string]map[string]string) string {
	for _, st := range slices.Sorted(maps.Keys(a)) {
		for k, v := range a[st] {
			if w, ok := b[st][k]; !ok || w != v {
				return fmt.Sprintf("%s %s: %q vs %q (present %t)", st, k, v, w, ok)
			}
		}
		for k, w := range b[st] {
			if _, ok := a[st][k]; !ok {
				return fmt.Sprintf("%s %s: absent vs %q", st, k, w)
			}
		}
	}
	return ""
}

// readAll reads keys from one node in chunks, recording each key's read as
// a final get (its interval is the chunk's).
func readAll(ctx context.Context, cl *clients, clock runClock, node string, keys map[string]map[string]bool, worker int) (map[string]map[string]string, []Op, error) {
	out := map[string]map[string]string{}
	var ops []Op
	for _, st := range slices.Sorted(maps.Keys(keys)) {
		out[st] = map[string]string{}
		all := slices.Sorted(maps.Keys(keys[st]))
		for i := 0; i < len(all); i += 256 {
			chunk := all[i:min(i+256, len(all))]
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, err := cl.get(cctx, node)
			inv := clock.now()
			var got map[string][]byte
			if err == nil {
				got, err = c.MGet(cctx, st, chunk...)
			}
			cancel()
			if err != nil {
				return nil, nil, err
			}
			done := clock.now()
			for k, v := range got {
				out[st][k] = string(v)
			}
			for _, k := range chunk {
				op := Op{Worker: worker, Node: node, Storage: st, Workload: "register", F: "get", Keys: []string{k},
					Invoke: inv, Complete: done, Status: StatusOK, Read: map[string]string{}, Final: true}
				if v, ok := got[k]; ok {
					op.Read[k] = string(v)
				}
				ops = append(ops, op)
			}
		}
	}
	return out, finalGroups(ops), nil
}

// finalGroups folds the final reads of a group's keys into one group read,
// so the linearizability check sees the group as one register; the reads
// of TTL keys become TTL reads, so the TTL check sees them, and those of
// the bounded storage's registers evict reads.
func finalGroups(ops []Op) []Op {
	var out []Op
	groups := map[string]*Op{}
	for _, op := range ops {
		k := op.Keys[0]
		if len(k) > 2 && k[0] == 'g' && k[len(k)-2] == '/' {
			id := op.Storage + "|" + k[:len(k)-2]
			g := groups[id]
			if g == nil {
				cp := op
				cp.Workload, cp.Keys, cp.Read = "group", nil, map[string]string{}
				g = &cp
				groups[id] = g
			}
			g.Keys = append(g.Keys, k)
			maps.Copy(g.Read, op.Read)
			continue
		}
		switch k[0] {
		case 'r':
			out = append(out, op)
		case 't':
			op.Workload = WorkloadTTL
			out = append(out, op)
		case 'e':
			op.Workload = WorkloadEvict
			out = append(out, op)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(groups)) {
		g := groups[id]
		sort.Strings(g.Keys)
		out = append(out, *g)
	}
	return out
}

// Save writes the history, faults, evictions, anomalies and summary to
// opts.OutDir.
func (r *Result) Save(dir, summary string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("out dir: %w", err)
	}
	if err := WriteJSONL(filepath.Join(dir, "history.jsonl"), r.Ops); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(r.Faults, "", "  ")
	_ = os.WriteFile(filepath.Join(dir, "faults.json"), b, 0o644)
	if r.Events != nil {
		b, _ = json.MarshalIndent(r.Events.Evictions, "", "  ")
		_ = os.WriteFile(filepath.Join(dir, "evictions.json"), b, 0o644)
	}
	writeAnomalies(filepath.Join(dir, "anomalies.txt"), r.Anomalies)
	return os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(summary), 0o644)
}
