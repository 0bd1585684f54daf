package rrplugin_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvnode/kvnode/client"
)

// TestHopCost measures what the RoadRunner hop costs PHP-shaped load:
// each caller holds one goridge connection and makes one call at a time,
// as a PHP worker does. Three targets, interleaved within every
// repetition so that load from elsewhere on the machine falls on all alike:
//
//   - direct: kvnode's RPC on the node the plugin talks to (PHP pointed at
//     kvnode);
//   - rr-kvnode: RoadRunner's RPC, storage with driver kvnode (this plugin);
//   - rr-memory: RoadRunner's RPC, RoadRunner's own memory driver.
//
// It is a measurement, not a test: it runs only with RRPLUGIN_BENCH=1.
// RRPLUGIN_BENCH_DURATION (default 3s) is one measured run,
// RRPLUGIN_BENCH_REPS (default 5) the repetitions; with RRPLUGIN_BENCH_OUT
// the markdown section is also written to that file (bench/run.sh appends
// it to docs/benchmarks.md).
//
//	RRPLUGIN_BENCH=1 go test -run TestHopCost -v -timeout 30m .
func TestHopCost(t *testing.T) {
	if os.Getenv("RRPLUGIN_BENCH") == "" {
		t.Skip("a benchmark: set RRPLUGIN_BENCH=1 to run it")
	}
	dur := envDuration(t, "RRPLUGIN_BENCH_DURATION", 3*time.Second)
	reps := envInt(t, "RRPLUGIN_BENCH_REPS", 5)
	loadStart := loadavg()

	targets := hopTargets(t)
	value := []byte(strings.Repeat("v", valueSize))

	cells := []load{
		{op: "mget", conc: 1},
		// A PHP worker runs its own code between two calls, and every
		// process on the path sleeps meanwhile; back-to-back calls find
		// them just done with the previous call instead.
		{op: "mget", conc: 1, gap: time.Millisecond},
		{op: "set", conc: 1},
		{op: "mget", conc: 16},
		{op: "set", conc: 16},
	}
	// results[load][target] = per-repetition results
	results := map[load]map[string][]result{}
	for rep := range reps {
		for _, ce := range cells {
			if results[ce] == nil {
				results[ce] = map[string][]result{}
			}
			// Rotate the order each repetition, so no target always runs
			// first (on a cold cache) or last.
			order := slices.Clone(targets)
			for range rep % len(order) {
				order = append(order[1:], order[0])
			}
			for _, tg := range order {
				r := run(t, tg, ce, dur, value)
				results[ce][tg.name] = append(results[ce][tg.name], r)
				t.Logf("rep %d %-24s %-9s %8.0f req/s  p50 %6.0f µs  mean %6.0f µs", rep+1, ce, tg.name, r.rps, r.p50, r.mean)
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "| call | c | direct p50 / mean | RR kvnode p50 / mean | RR memory p50 / mean | RR kvnode / direct | RR memory / direct | RR kvnode / (RR memory + direct) | direct req/s | RR kvnode req/s | RR memory req/s | target: ≤ 1.3× direct at c=1 |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, ce := range cells {
		rs := results[ce]
		// floor: RoadRunner's own handling (RR memory) plus one more
		// round trip to kvnode (direct), what the hop cannot go below.
		var hop, memory, floor []float64
		for i := range reps {
			kvn, mem, dir := rs["rr-kvnode"][i].mean, rs["rr-memory"][i].mean, rs["direct"][i].mean
			hop = append(hop, kvn/dir)
			memory = append(memory, mem/dir)
			floor = append(floor, kvn/(mem+dir))
		}
		med := func(name string, f func(result) float64) float64 {
			var xs []float64
			for _, r := range rs[name] {
				xs = append(xs, f(r))
			}
			return median(xs)
		}
		p50 := func(r result) float64 { return r.p50 }
		mean := func(r result) float64 { return r.mean }
		rps := func(r result) float64 { return r.rps }
		verdict := ""
		if ce.conc == 1 {
			verdict = "met"
			if median(hop) > 1.3 {
				verdict = "NOT met"
			}
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f / %.0f µs | %.0f / %.0f µs | %.0f / %.0f µs | %.2f× | %.2f× | %.2f× | %.0f | %.0f | %.0f | %s |\n",
			ce.call(), ce.conc,
			med("direct", p50), med("direct", mean), med("rr-kvnode", p50), med("rr-kvnode", mean), med("rr-memory", p50), med("rr-memory", mean),
			median(hop), median(memory), median(floor), med("direct", rps), med("rr-kvnode", rps), med("rr-memory", rps), verdict)
	}
	section := fmt.Sprintf(`## RoadRunner plugin: the added hop

### PHP-shaped load through RoadRunner's RPC (%s, %d CPUs, load average %s at start, %s at end)

`+"`RRPLUGIN_BENCH=1 RRPLUGIN_BENCH_DURATION=%s RRPLUGIN_BENCH_REPS=%d go test -run TestHopCost -v -timeout 30m .`"+` in
`+"`rrplugin/`"+`. Each caller holds one goridge connection and makes one call at a time, as a PHP worker
does; 1 key of %d bytes per call out of %d preloaded. In the row "1ms apart" each caller sleeps 1 ms
before each call, as a PHP worker runs its own code between two kv calls: every process on the path
is idle meanwhile and wakes for each call; its req/s counts the sleeps. Targets, interleaved within
every repetition (%d × %s each): **direct** = kvnode's RPC on the node the plugin talks to (the
leader of a three-node cluster of local processes; storage with local reads); **RR kvnode** =
RoadRunner's RPC, storage with `+"`driver: kvnode`"+` on that cluster; **RR memory** = the same
RoadRunner's `+"`driver: memory`"+`. Latencies are medians over the repetitions; ratios are medians of
the per-repetition ratios of mean latency. Everything shares the machine's CPUs with whatever else
runs there. A direct call is one loopback round trip; through RoadRunner it is two (PHP to
RoadRunner, RoadRunner to kvnode) plus RoadRunner's own handling, which RR memory shows on its own:
RR memory + direct is the floor no driver can go below, so RR kvnode / direct cannot go below
1 + RR memory / direct. Where the rest goes: "The RoadRunner hop, profiled" below.

%s`, time.Now().UTC().Format("2006-01-02T15:04Z"), runtime.NumCPU(), loadStart, loadavg(), dur, reps,
		valueSize, keyspace, reps, dur, b.String())
	t.Log("\n" + section)
	if out := os.Getenv("RRPLUGIN_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(section), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The load of every target: keys k0..k999, values of valueSize bytes.
const keyspace, valueSize = 1000, 100

// hopTargets starts a three-node cluster and a RoadRunner with the plugin
// pointed at it, leader first, preloads the keys, and returns the three
// targets: direct, rr-kvnode and rr-memory.
func hopTargets(t *testing.T) []target {
	t.Helper()
	cl := startCluster(t)
	leader := cl.leader(t)
	addrs := []string{leader.rpc}
	for _, n := range cl.nodes {
		if n != leader {
			addrs = append(addrs, n.rpc)
		}
	}
	rr := startRR(t, addrs, `kv:
  sessions: { driver: kvnode, config: { storage: sessions } }
  local:    { driver: memory, config: {} }
`)
	targets := []target{
		{name: "direct", addr: leader.rpc, storage: "sessions", serving: []*proc{leader.proc}},
		{name: "rr-kvnode", addr: rr.rpc, storage: "sessions", serving: []*proc{rr.proc, leader.proc}},
		{name: "rr-memory", addr: rr.rpc, storage: "local", serving: []*proc{rr.proc}},
	}
	value := []byte(strings.Repeat("v", valueSize))
	items := make([]client.Item, 0, keyspace)
	for k := range keyspace {
		items = append(items, client.Item{Key: "k" + strconv.Itoa(k), Value: value})
	}
	for _, tg := range targets[1:] { // direct and rr-kvnode share the cluster's storage
		if err := dial(t, tg.addr).Set(t.Context(), tg.storage, items...); err != nil {
			t.Fatalf("preload %s: %v", tg.name, err)
		}
	}
	return targets
}

// TestHopHold puts one target of TestHopCost under its c=1 mget load for
// RRPLUGIN_HOLD_DURATION (default 8s), for a profiler to watch:
// testdata/hopsched.sh runs it under perf. RRPLUGIN_HOLD names the target
// (direct, rr-kvnode or rr-memory). As the load starts, the ids of the
// processes serving it (RoadRunner, the leader, or both) and of this test
// are written to the file RRPLUGIN_HOLD_PIDS, one line: "name=pid ...".
//
//	RRPLUGIN_HOLD=rr-kvnode RRPLUGIN_HOLD_PIDS=/tmp/pids go test -count=1 -run TestHopHold -v .
func TestHopHold(t *testing.T) {
	name := os.Getenv("RRPLUGIN_HOLD")
	if name == "" {
		t.Skip("a profiling aid: set RRPLUGIN_HOLD to direct, rr-kvnode or rr-memory")
	}
	dur := envDuration(t, "RRPLUGIN_HOLD_DURATION", 8*time.Second)
	targets := hopTargets(t)
	i := slices.IndexFunc(targets, func(tg target) bool { return tg.name == name })
	if i < 0 {
		t.Fatalf("RRPLUGIN_HOLD=%q: not a target", name)
	}
	tg := targets[i]
	if out := os.Getenv("RRPLUGIN_HOLD_PIDS"); out != "" {
		var line strings.Builder
		for _, p := range tg.serving {
			fmt.Fprintf(&line, "%s=%d ", strings.Fields(p.name)[0], p.cmd.Process.Pid)
		}
		fmt.Fprintf(&line, "load=%d\n", os.Getpid())
		if err := os.WriteFile(out, []byte(line.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := run(t, tg, load{op: "mget", conc: 1}, dur, []byte(strings.Repeat("v", valueSize)))
	t.Logf("%s mget c=1: %.0f req/s  p50 %.0f µs  mean %.0f µs", tg.name, r.rps, r.p50, r.mean)
}

type target struct {
	name, addr, storage string
	serving             []*proc // the processes that serve it
}

type result struct {
	rps, p50, mean float64 // requests per second; latencies in µs
}

// load is what run puts on a target: op (mget or set, one key) by conc
// callers, each sleeping gap before each of its calls.
type load struct {
	op   string
	conc int
	gap  time.Duration
}

func (l load) String() string { return fmt.Sprintf("%s c=%d gap=%s", l.op, l.conc, l.gap) }

// call names the row of the load in TestHopCost's table.
func (l load) call() string {
	if l.gap > 0 {
		return fmt.Sprintf("%s 1 key, %s apart", l.op, l.gap)
	}
	return l.op + " 1 key"
}

// run drives tg with l.conc callers, each on its own connection making one
// call at a time, for dur, and measures every call.
func run(t *testing.T, tg target, l load, dur time.Duration, value []byte) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), dur+30*time.Second)
	defer cancel()
	lat := make([][]time.Duration, l.conc)
	var wg sync.WaitGroup
	errs := make(chan error, l.conc)
	began := time.Now()
	end := began.Add(dur)
	for w := range l.conc {
		c, err := client.Dial(ctx, tg.addr, client.WithPoolSize(1))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), uint64(began.UnixNano())))
			for n := 0; n < 10_000_000 && time.Now().Before(end); n++ {
				if l.gap > 0 {
					time.Sleep(l.gap) // pacing: PHP's own work between two calls
				}
				key := "k" + strconv.Itoa(rnd.IntN(keyspace))
				t0 := time.Now()
				var err error
				if l.op == "set" {
					err = c.Set(ctx, tg.storage, client.Item{Key: key, Value: value})
				} else {
					_, err = c.MGet(ctx, tg.storage, key)
				}
				if err != nil {
					errs <- fmt.Errorf("%s %s: %w", tg.name, l.op, err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	if len(all) == 0 {
		t.Fatalf("%s %s: no call completed", tg.name, l.op)
	}
	return result{
		rps:  float64(len(all)) / elapsed.Seconds(),
		p50:  float64(all[len(all)/2].Microseconds()),
		mean: float64(sum.Microseconds()) / float64(len(all)),
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}
