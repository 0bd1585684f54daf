package drivers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// StandaloneOptions configures a Standalone.
type StandaloneOptions struct {
	// Driver names the engine in span names ("memory:set").
	Driver string
	// Clock is the wall clock reads and writes are stamped with (time.Now
	// when nil). Tests pass a fake one.
	Clock func() time.Time
	// SweepInterval is how often expired keys are removed (1s when zero;
	// negative disables the sweeper). Reads hide expired keys regardless,
	// so this bounds memory held by dead keys, not correctness.
	SweepInterval time.Duration
	// SweepBatch caps the keys removed by one sweep write
	// (DefaultSweepBatch when zero).
	SweepBatch int
	// Logger receives sweep failures (slog.Default-free: nil discards).
	Logger *slog.Logger
	// Storage names the storage in errors ("storage \"cache\" full").
	Storage string
	// EvictionSamples is the lru policy's samples per victim
	// (DefaultSamples when zero); see SetLimits.
	EvictionSamples int
	// Tracer opens one child span per call; nil means none.
	Tracer trace.Tracer
}

// Standalone serves an Engine on a single node: an EngineStore whose committer
// stamps writes with the wall clock and coalesces concurrent ones into one
// Engine.Apply (one transaction and one fsync for boltdb), and a sweeper
// that removes expired keys in the background.
type Standalone struct {
	*EngineStore
	gc   *groupCommit
	opts StandaloneOptions

	stopOnce sync.Once
	stop     chan struct{}
	swept    sync.WaitGroup
}

var _ Store = (*Standalone)(nil)

// NewStandalone wraps e. The Standalone owns e: Close closes it.
func NewStandalone(e Engine, opts StandaloneOptions) *Standalone {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	gc := &groupCommit{e: e, clock: NewStamper(opts.Clock, nil), storage: opts.Storage}
	gc.reads = NewReadClock(gc.clock)
	l := &Standalone{
		EngineStore: NewEngineStore(e, gc, EngineStoreOptions{SpanPrefix: opts.Driver, Tracer: opts.Tracer, Owned: true}),
		gc:          gc,
		opts:        opts,
		stop:        make(chan struct{}),
	}
	if opts.SweepInterval > 0 {
		l.swept.Add(1)
		go l.sweepLoop()
	}
	return l
}

// SetLimits bounds the engine (which must be Evictable) with lim and
// starts planning evictions for it. Call it before serving: it applies an
// OpLimit, which fails while the engine holds more than lim allows.
func (l *Standalone) SetLimits(ctx context.Context, lim Limits) error {
	ev, ok := l.gc.e.(Evictable)
	if !ok {
		return fmt.Errorf("%w: the %s driver cannot be bounded", ErrBadLimit, l.opts.Driver)
	}
	if err := l.gc.Commit(ctx, Op{Kind: OpLimit, Limits: lim}); err != nil {
		return err
	}
	if lim.Bounded() {
		l.gc.planner.Store(NewPlanner(ev, l.opts.EvictionSamples))
	} else {
		l.gc.planner.Store(nil)
	}
	return nil
}

func (l *Standalone) sweepLoop() {
	defer l.swept.Done()
	t := time.NewTicker(l.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.Sweep(context.Background())
		}
	}
}

// Sweep removes expired keys now (drivers.Sweep).
func (l *Standalone) Sweep(ctx context.Context) {
	err := l.guard(func() error {
		_, err := Sweep(ctx, l.gc.e, l.gc.clock.Now, l.opts.SweepBatch, l.gc.Commit)
		return err
	})
	if err != nil && !errors.Is(err, ErrClosed) {
		l.opts.Logger.Warn("expiry sweep failed", "driver", l.opts.Driver, "err", err)
	}
}

// Close stops the sweeper, waits for calls in flight (queued writes are
// applied, not dropped) and closes the engine.
func (l *Standalone) Close() error {
	l.stopOnce.Do(func() {
		close(l.stop)
		l.swept.Wait()
	})
	return l.EngineStore.Close()
}

// groupCommit is Standalone's committer.
type groupCommit struct {
	e     Engine
	clock Stamper
	// reads is the time reads judge expiry by: the clock, never going back.
	reads   *ReadClock
	storage string

	mu    sync.Mutex
	queue []*writeReq
	busy  bool // a caller is applying a batch
	// planner makes room in each batch for a bounded engine; it is set by
	// SetLimits and used only by the caller applying a batch.
	planner atomic.Pointer[Planner]
}

// writeReq is one caller's write waiting in the group-commit queue.
type writeReq struct {
	op   Op
	err  error
	lead bool // woken to apply the queue rather than with a result
	done chan struct{}
}

// ReadTime implements Committer: reads judge expiry by the wall clock,
// never going back (ReadClock).
func (g *groupCommit) ReadTime(context.Context) (int64, error) { return g.reads.Now(), nil }

// Commit implements Committer: it applies op and returns once it is
// applied (and, for a persistent engine, synced). A writer that finds no
// batch in flight applies its op at once; writers arriving meanwhile
// queue, and when the batch in flight ends the first of them applies the
// whole queue in one Engine.Apply. So N concurrent writers cost about two
// fsyncs, not N, and a lone writer pays no queueing. Once queued a write
// is not abandoned on ctx cancellation: its outcome would be unknown.
func (g *groupCommit) Commit(ctx context.Context, op Op) error {
	if err := ctx.Err(); err != nil {
		return err // context errors are returned as is
	}
	g.mu.Lock()
	if g.busy {
		r := &writeReq{op: op, done: make(chan struct{})}
		g.queue = append(g.queue, r)
		g.mu.Unlock()
		<-r.done
		if r.lead {
			g.applyQueue(r)
		}
		return r.err
	}
	g.busy = true
	g.mu.Unlock()

	r := writeReq{op: op}
	g.applyBatch([]*writeReq{&r})
	g.handOff()
	return r.err
}

// applyQueue applies everything queued (self included) as one batch.
func (g *groupCommit) applyQueue(self *writeReq) {
	g.mu.Lock()
	batch := g.queue
	g.queue = nil
	g.mu.Unlock()
	g.applyBatch(batch)
	g.handOff()
	for _, w := range batch {
		if w != self {
			close(w.done)
		}
	}
}

// handOff passes the turn to the first queued writer, or ends it.
func (g *groupCommit) handOff() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.busy = false
		return
	}
	next := g.queue[0]
	next.lead = true
	close(next.done)
}

// applyBatch stamps the batch's writes with one time and applies them in
// one Engine.Apply, after the eviction that makes room for them when the
// engine is bounded.
func (g *groupCommit) applyBatch(batch []*writeReq) {
	ops := make([]Op, len(batch), len(batch)+1)
	for i, w := range batch {
		ops[i] = w.op
	}
	now := g.clock.Stamp(ops)
	first := 0
	if p := g.planner.Load(); p != nil {
		ev, t := p.Plan(ops, now)
		defer p.Done(t)
		if ev != nil {
			ops = append([]Op{*ev}, ops...)
			first = 1
		}
	}
	errs, err := g.e.Apply(0, ops)
	for i, w := range batch {
		switch {
		case err != nil:
			w.err = fmt.Errorf("apply: %w", err)
		case first+i < len(errs):
			w.err = g.storageErr(errs[first+i])
		}
	}
}

// storageErr names the storage in a refusal for want of room.
func (g *groupCommit) storageErr(err error) error {
	if err != nil && g.storage != "" && errors.Is(err, ErrFull) {
		return fmt.Errorf("storage %q: %w", g.storage, err)
	}
	return err
}
