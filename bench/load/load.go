package load

import (
	"context"
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

const (
	benchMixedSetPct = 20 // OpMixed: 20 % kv.Set, 80 % kv.MGet
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

var benchOpNames = [benchOpCount]string{OpSet, OpMGet, OpHas}
var benchMethods = [benchOpCount]string{client.MethodSet, client.MethodMGet, client.MethodHas}

// Config is one run of the load generator.
type Config struct {
	// RPC is the server's address: tcp://host:port, host:port or
	// unix:///path.
	RPC string
	// Storage is the storage loaded (keys are named bench:NNNNNNNN).
	Storage string
	// Conns is the number of connections; each sends one request at a
	// time, like a PHP worker.
	Conns int
	// Duration is how long to measure after the warm-up (0: until Total
	// requests are done); Total is the requests to measure (0: until
	// Duration elapses). With both, whichever ends first.
	Duration time.Duration
	Total    int64
	// Op is the request mix: OpSet, OpMGet, OpHas or OpMixed (80 % mget,
	// 20 % set).
	Op string
	// Keys is the keys per request, Size the value size in bytes, Keyspace
	// the number of distinct keys.
	Keys, Size, Keyspace int
	// TTL is the TTL of the keys written (0: none); Warmup how long to run
	// before measuring.
	TTL, Warmup time.Duration
	// Preload sets every key before measuring, PreloadBatch keys per
	// kv.Set, so that reads hit.
	Preload      bool
	PreloadBatch int
	// Progress receives a line a second while the run goes (nil: none);
	// Overwrite rewrites it in place, for a terminal.
	Progress  io.Writer
	Overwrite bool
}

// The request mixes Config.Op names.
const (
	OpSet   = "set"
	OpMGet  = "mget"
	OpHas   = "has"
	OpMixed = "mixed"
)

// ErrConfig is returned by Run for a Config it cannot run.
var ErrConfig = errors.New("load: bad config")

// check refuses what would make Run fail in odd ways (no connections, an
// empty keyspace, no end). The command's flags are checked before, with
// its own words.
func (c *Config) check() error {
	switch {
	case c.Op != OpSet && c.Op != OpMGet && c.Op != OpHas && c.Op != OpMixed:
		return fmt.Errorf("%w: op %q", ErrConfig, c.Op)
	case c.Conns < 1 || c.Keyspace < 1 || c.Keys < 1 || c.Keys > c.Keyspace:
		return fmt.Errorf("%w: want at least one connection, and 1 to Keyspace keys per request", ErrConfig)
	case c.Size < 0 || c.Total < 0 || c.Duration < 0 || c.TTL < 0 || c.Warmup < 0:
		return fmt.Errorf("%w: negative size, total or duration", ErrConfig)
	case c.Duration == 0 && c.Total == 0:
		return fmt.Errorf("%w: no Duration and no Total: the run would not end", ErrConfig)
	}
	return nil
}

// benchRun is the state the workers share, all of it read-only during the
// run except the request budget.
type benchRun struct {
	cfg       *Config
	keys      []string
	value     []byte
	warmupEnd time.Time
	budget    atomic.Int64 // requests left when Config.Total is set
	limited   bool
}

// Run loads the server as cfg says and reports what it measured. When ctx
// ends (Ctrl-C) the run stops early and the partial result is returned,
// marked Interrupted.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	network, address, err := client.ParseAddr(cfg.RPC)
	if err != nil {
		return nil, err //nolint:wrapcheck // names the address
	}
	b := &benchRun{cfg: &cfg, keys: make([]string, cfg.Keyspace), value: make([]byte, cfg.Size)}
	for i := range b.keys {
		b.keys[i] = "bench:" + strconv.Itoa(100_000_000 + i)[1:]
	}
	rng := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // benchmark values, not secrets
	for i := range b.value {
		b.value[i] = byte('a' + rng.IntN(26))
	}
	workers := make([]*benchWorker, cfg.Conns)
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.close()
			}
		}
	}()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	for i := range workers {
		nc, err := dialer.DialContext(ctx, network, address)
		if err != nil {
			return nil, fmt.Errorf("connect %s: %w", cfg.RPC, err)
		}
		workers[i] = newBenchWorker(i, b, rpc.NewClientWithCodec(goridgerpc.NewClientCodec(nc)))
	}
	res := &Result{
		Op: cfg.Op, RPC: cfg.RPC, Storage: cfg.Storage, Connections: cfg.Conns,
		KeysPerReq: cfg.Keys, ValueSize: cfg.Size, Keyspace: cfg.Keyspace, TTLSeconds: cfg.TTL.Seconds(),
	}
	if cfg.Preload {
		if err := b.preload(ctx, workers); err != nil {
			return nil, err
		}
		res.Preloaded = cfg.Keyspace
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	b.warmupEnd = start.Add(cfg.Warmup)
	if cfg.Total > 0 {
		b.limited = true
		b.budget.Store(cfg.Total)
	}
	if cfg.Duration > 0 {
		t := time.AfterFunc(cfg.Warmup+cfg.Duration, cancel)
		defer t.Stop()
	}
	// At the end each worker finishes the request it has in flight; one
	// still waiting after benchStopGrace (a hung server) is cut loose.
	stopWatch := closeWhenDone(runCtx, benchStopGrace, workers)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.loop(runCtx) })
	}
	stopProgress := b.progress(runCtx, workers)
	wg.Wait()
	end := time.Now()
	stopWatch()
	stopProgress()

	measured := max(end.Sub(b.warmupEnd), 0)
	res.ElapsedS = measured.Round(time.Millisecond).Seconds()
	res.Interrupted = ctx.Err() != nil
	res.Ops = make(map[string]OpResult)
	var total opStats
	for op := range benchOpCount {
		var s opStats
		for _, w := range workers {
			s.merge(&w.stats[op])
			if res.FirstError == "" && w.firstErr != nil {
				res.FirstError = w.firstErr.Error()
			}
		}
		if s.requests > 0 || benchOpNames[op] == cfg.Op {
			res.Ops[benchOpNames[op]] = newBenchOpResult(&s, op != benchSet, measured)
		}
		total.merge(&s)
	}
	res.Total = newBenchOpResult(&total, cfg.Op == OpMGet || cfg.Op == OpHas, measured)
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
	if b.cfg.TTL > 0 {
		timeout = client.FormatTimeout(time.Now().Add(b.cfg.TTL))
	}
	for _, w := range workers {
		wg.Go(func() {
			batch := max(b.cfg.PreloadBatch, 1)
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
				req := &kvv1.Request{Storage: b.cfg.Storage, Items: items}
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
		rng:     rand.New(rand.NewPCG(uint64(id), 0x6b766e6f6465)), //nolint:gosec // key choice of a load generator, not a secret
		setReq:  &kvv1.Request{Storage: b.cfg.Storage},
		readReq: &kvv1.Request{Storage: b.cfg.Storage},
		resp:    new(kvv1.Response),
		done:    make(chan *rpc.Call, 1),
	}
	for range b.cfg.Keys {
		w.setReq.Items = append(w.setReq.Items, &kvv1.Item{Value: b.value})
		w.readReq.Items = append(w.readReq.Items, &kvv1.Item{})
	}
	return w
}

func (w *benchWorker) close() { w.once.Do(func() { _ = w.rpc.Close() }) }

func (w *benchWorker) pick() benchOp {
	switch w.b.cfg.Op {
	case OpSet:
		return benchSet
	case OpHas:
		return benchHas
	case OpMixed:
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
		if w.b.cfg.TTL > 0 && now.Sub(w.timeoutAt) > 100*time.Millisecond {
			w.timeout, w.timeoutAt = client.FormatTimeout(now.Add(w.b.cfg.TTL)), now
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
		st.keys += int64(w.b.cfg.Keys)
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
