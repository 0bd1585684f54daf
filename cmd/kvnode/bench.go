package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/rpc"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
	goridgerpc "github.com/roadrunner-server/goridge/v3/pkg/rpc"

	"github.com/kvnode/kvnode/client"
)

// Limits that keep a mistyped flag from exhausting memory.
const (
	benchMaxKeyspace = 10_000_000
	benchMaxConns    = 10_000
	benchPreloadN    = 100 // keys per kv.Set while preloading, by default
	benchMixedSetPct = 20  // --op mixed: 20 % kv.Set, 80 % kv.MGet
	benchStopGrace   = time.Second
)

// benchOp is the kind of one request; it indexes a worker's stats.
type benchOp int

const (
	benchSet benchOp = iota
	benchMGet
	benchHas
	benchOpCount
)

var benchOpNames = [benchOpCount]string{"set", "mget", "has"}
var benchMethods = [benchOpCount]string{client.MethodSet, client.MethodMGet, client.MethodHas}

type benchConfig struct {
	rpc, storage     string
	conns            int
	duration         time.Duration // 0: until -n requests are done
	total            int64         // 0: until -d elapses
	op               string
	keys, size       int
	keyspace         int
	ttl, warmup      time.Duration
	preload          bool
	preloadBatch     int
	jsonOut, quiet   bool
	network, address string
}

func parseBenchFlags(args []string, stderr io.Writer) (*benchConfig, error) {
	fs := newFlagSet("bench", "[flags]", stderr)
	cfg := &benchConfig{}
	fs.StringVar(&cfg.rpc, "rpc", defaultRPCAddr, "RPC address: tcp://host:port, host:port or unix:///path")
	fs.StringVar(&cfg.storage, "storage", defaultStorage, "storage to load (keys are named bench:NNNNNNNN)")
	fs.IntVar(&cfg.conns, "c", 16, "connections; each sends one request at a time, like a PHP worker")
	fs.DurationVar(&cfg.duration, "d", 10*time.Second, "how long to measure, after the warm-up")
	fs.Int64Var(&cfg.total, "n", 0, "total requests to measure (instead of -d, or whichever ends first when both are given)")
	fs.StringVar(&cfg.op, "op", "mget", "request mix: set, mget, has, or mixed (80% mget, 20% set)")
	fs.IntVar(&cfg.keys, "keys", 1, "keys per request")
	fs.IntVar(&cfg.size, "size", 100, "value size in bytes")
	fs.IntVar(&cfg.keyspace, "keyspace", 100_000, "number of distinct keys")
	fs.DurationVar(&cfg.ttl, "ttl", 0, "TTL of the keys written (0: none)")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "run this long before measuring")
	fs.IntVar(&cfg.preloadBatch, "preload-batch", benchPreloadN, "keys per kv.Set while preloading")
	fs.BoolVar(&cfg.preload, "preload", true, "set every key before measuring so reads hit (default for mget, has, mixed; set it explicitly for --op set)")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print the result as JSON")
	fs.BoolVar(&cfg.quiet, "q", false, "no progress line on stderr")
	pos, err := parseVerbArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != 0 {
		return nil, usageErr(fs, "takes no arguments, got %q", pos)
	}
	if flagWasSet(fs, "n") && !flagWasSet(fs, "d") {
		cfg.duration = 0
	}
	if cfg.op == "set" && !flagWasSet(fs, "preload") {
		cfg.preload = false
	}
	if cfg.network, cfg.address, err = client.ParseAddr(cfg.rpc); err != nil {
		return nil, usageErr(fs, "--rpc: %v", err)
	}
	switch {
	case cfg.op != "set" && cfg.op != "mget" && cfg.op != "has" && cfg.op != "mixed":
		return nil, usageErr(fs, "--op must be set, mget, has or mixed, not %q", cfg.op)
	case cfg.conns < 1 || cfg.conns > benchMaxConns:
		return nil, usageErr(fs, "-c must be between 1 and %d", benchMaxConns)
	case cfg.keyspace < 1 || cfg.keyspace > benchMaxKeyspace:
		return nil, usageErr(fs, "--keyspace must be between 1 and %d", benchMaxKeyspace)
	case cfg.keys < 1 || cfg.keys > cfg.keyspace:
		return nil, usageErr(fs, "--keys must be between 1 and --keyspace")
	case cfg.size < 0 || cfg.total < 0 || cfg.duration < 0 || cfg.ttl < 0 || cfg.warmup < 0:
		return nil, usageErr(fs, "--size, -n, -d, --ttl and --warmup cannot be negative")
	case cfg.duration == 0 && cfg.total == 0:
		return nil, usageErr(fs, "one of -d and -n must be positive")
	}
	return cfg, nil
}

// runBench is a load generator in the spirit of redis-benchmark: -c
// connections, each with its own net/rpc client over the goridge codec
// (the code path a PHP worker exercises on the server), each sending one
// request at a time for -d or until -n requests are done. Keys, values and
// request messages are made up front and reused, so the generator
// allocates nothing per request beyond what net/rpc and protobuf decoding
// do. Ctrl-C ends the run early and still prints what was measured.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseBenchFlags(args, stderr)
	if err != nil {
		return err
	}
	res, err := cfg.run(ctx, stderr)
	if err != nil {
		return err
	}
	if cfg.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("write result: %w", err)
		}
	} else if err := res.writeText(stdout); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	if res.Total.Errors > 0 {
		return fmt.Errorf("%d of %d requests failed, first: %s", res.Total.Errors, res.Total.Requests, res.FirstError)
	}
	return nil
}

// benchRun is the state the workers share, all of it read-only during the
// run except the request budget.
type benchRun struct {
	cfg       *benchConfig
	keys      []string
	value     []byte
	warmupEnd time.Time
	budget    atomic.Int64 // requests left when -n is given
	limited   bool
}

func (cfg *benchConfig) run(ctx context.Context, stderr io.Writer) (*benchResult, error) {
	b := &benchRun{cfg: cfg, keys: make([]string, cfg.keyspace), value: make([]byte, cfg.size)}
	for i := range b.keys {
		b.keys[i] = "bench:" + strconv.Itoa(100_000_000 + i)[1:]
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range b.value {
		b.value[i] = byte('a' + rng.IntN(26))
	}
	workers := make([]*benchWorker, cfg.conns)
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.close()
			}
		}
	}()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	for i := range workers {
		nc, err := dialer.DialContext(ctx, cfg.network, cfg.address)
		if err != nil {
			return nil, fmt.Errorf("connect %s: %w", cfg.rpc, err)
		}
		workers[i] = newBenchWorker(i, b, rpc.NewClientWithCodec(goridgerpc.NewClientCodec(nc)))
	}
	res := &benchResult{
		Op: cfg.op, RPC: cfg.rpc, Storage: cfg.storage, Connections: cfg.conns,
		KeysPerReq: cfg.keys, ValueSize: cfg.size, Keyspace: cfg.keyspace, TTLSeconds: cfg.ttl.Seconds(),
	}
	if cfg.preload {
		if err := b.preload(ctx, workers); err != nil {
			return nil, err
		}
		res.Preloaded = cfg.keyspace
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	b.warmupEnd = start.Add(cfg.warmup)
	if cfg.total > 0 {
		b.limited = true
		b.budget.Store(cfg.total)
	}
	if cfg.duration > 0 {
		t := time.AfterFunc(cfg.warmup+cfg.duration, cancel)
		defer t.Stop()
	}
	// At the end each worker finishes the request it has in flight; one
	// still waiting after benchStopGrace (a hung server) is cut loose.
	stopWatch := closeWhenDone(runCtx, benchStopGrace, workers)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.loop(runCtx) })
	}
	stopProgress := b.progress(runCtx, workers, stderr)
	wg.Wait()
	end := time.Now()
	stopWatch()
	stopProgress()

	measured := max(end.Sub(b.warmupEnd), 0)
	res.ElapsedS = measured.Round(time.Millisecond).Seconds()
	res.Interrupted = ctx.Err() != nil
	res.Ops = make(map[string]benchOpResult)
	var total opStats
	for op := range benchOpCount {
		var s opStats
		for _, w := range workers {
			s.merge(&w.stats[op])
			if res.FirstError == "" && w.firstErr != nil {
				res.FirstError = w.firstErr.Error()
			}
		}
		if s.requests > 0 || benchOpNames[op] == cfg.op {
			res.Ops[benchOpNames[op]] = newBenchOpResult(&s, op != benchSet, measured)
		}
		total.merge(&s)
	}
	res.Total = newBenchOpResult(&total, cfg.op == "mget" || cfg.op == "has", measured)
	return res, nil
}

// closeWhenDone closes the workers' connections once ctx has ended and
// grace has passed, unless the returned stop is called first: closing makes
// a call blocked on a hung server return.
func closeWhenDone(ctx context.Context, grace time.Duration, workers []*benchWorker) (stop func()) {
	stopped := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-stopped:
			return
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			for _, w := range workers {
				w.close()
			}
		case <-stopped:
		}
	})
	return func() {
		close(stopped)
		wg.Wait()
	}
}

// preload sets every key, spreading batches over the connections.
func (b *benchRun) preload(ctx context.Context, workers []*benchWorker) error {
	defer closeWhenDone(ctx, 0, workers)()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	timeout := ""
	if b.cfg.ttl > 0 {
		timeout = client.FormatTimeout(time.Now().Add(b.cfg.ttl))
	}
	for _, w := range workers {
		wg.Go(func() {
			batch := max(b.cfg.preloadBatch, 1)
			items := make([]*kvv1.Item, 0, batch)
			for ctx.Err() == nil {
				from := int(next.Add(int64(batch))) - batch
				if from >= len(b.keys) {
					return
				}
				items = items[:0]
				for _, k := range b.keys[from:min(from+batch, len(b.keys))] {
					items = append(items, &kvv1.Item{Key: k, Value: b.value, Timeout: timeout})
				}
				req := &kvv1.Request{Storage: b.cfg.storage, Items: items}
				if err := w.rpc.Call(client.MethodSet, req, new(kvv1.Response)); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil { // first: it made the calls in flight fail
		return fmt.Errorf("preload: %w", err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("preload: %w", errs[0])
	}
	return nil
}

// benchWorker drives one connection, one request at a time. Its requests
// and stats are its own; only completed and failed are read by the
// progress line while it runs.
type benchWorker struct {
	b    *benchRun
	rpc  *rpc.Client
	once sync.Once
	rng  *rand.Rand

	setReq, readReq *kvv1.Request
	resp            *kvv1.Response
	done            chan *rpc.Call
	timeout         string
	timeoutAt       time.Time

	stats     [benchOpCount]opStats
	firstErr  error
	completed atomic.Int64
	failed    atomic.Int64
}

func newBenchWorker(id int, b *benchRun, c *rpc.Client) *benchWorker {
	w := &benchWorker{
		b:       b,
		rpc:     c,
		rng:     rand.New(rand.NewPCG(uint64(id), 0x6b766e6f6465)),
		setReq:  &kvv1.Request{Storage: b.cfg.storage},
		readReq: &kvv1.Request{Storage: b.cfg.storage},
		resp:    new(kvv1.Response),
		done:    make(chan *rpc.Call, 1),
	}
	for range b.cfg.keys {
		w.setReq.Items = append(w.setReq.Items, &kvv1.Item{Value: b.value})
		w.readReq.Items = append(w.readReq.Items, &kvv1.Item{})
	}
	return w
}

func (w *benchWorker) close() { w.once.Do(func() { _ = w.rpc.Close() }) }

func (w *benchWorker) pick() benchOp {
	switch w.b.cfg.op {
	case "set":
		return benchSet
	case "has":
		return benchHas
	case "mixed":
		if w.rng.IntN(100) < benchMixedSetPct {
			return benchSet
		}
	}
	return benchMGet
}

// fill points the reused request at --keys consecutive keys from a random
// start, so the keys of one request are distinct.
func (w *benchWorker) fill(op benchOp, now time.Time) *kvv1.Request {
	req := w.readReq
	if op == benchSet {
		req = w.setReq
		if w.b.cfg.ttl > 0 && now.Sub(w.timeoutAt) > 100*time.Millisecond {
			w.timeout, w.timeoutAt = client.FormatTimeout(now.Add(w.b.cfg.ttl)), now
		}
	}
	keys := w.b.keys
	at := w.rng.IntN(len(keys))
	for _, it := range req.Items {
		it.Key = keys[at]
		if op == benchSet {
			it.Timeout = w.timeout
		}
		if at++; at == len(keys) {
			at = 0
		}
	}
	return req
}

func (w *benchWorker) loop(ctx context.Context) {
	for ctx.Err() == nil {
		start := time.Now()
		warm := start.Before(w.b.warmupEnd)
		if !warm && w.b.limited && w.b.budget.Add(-1) < 0 {
			return
		}
		op := w.pick()
		call := w.rpc.Go(benchMethods[op], w.fill(op, start), w.resp, w.done)
		<-call.Done
		elapsed := time.Since(start)
		if call.Error != nil && ctx.Err() != nil {
			return // cut short by the end of the run: neither success nor error
		}
		var se rpc.ServerError
		broken := call.Error != nil && !errors.As(call.Error, &se)
		if warm && !broken {
			continue
		}
		st := &w.stats[op]
		st.requests++
		st.keys += int64(w.b.cfg.keys)
		if call.Error != nil {
			st.errors++
			w.failed.Add(1)
			if w.firstErr == nil {
				w.firstErr = call.Error
			}
			if broken {
				return // the connection is gone; retrying would spin on errors
			}
		} else {
			st.hist.record(elapsed)
			if op != benchSet {
				st.hits += int64(len(w.resp.GetItems()))
			}
		}
		w.completed.Add(1)
	}
}
