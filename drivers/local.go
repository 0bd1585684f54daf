package drivers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// LocalOptions configures a Local.
type LocalOptions struct {
	// Driver names the engine in span names ("memory:set").
	Driver string
	// Clock is the wall clock reads and writes are stamped with (time.Now
	// when nil). Tests pass a fake one.
	Clock func() time.Time
	// SweepInterval is how often expired keys are removed (1s when zero;
	// negative disables the sweeper). Reads hide expired keys regardless,
	// so this bounds memory held by dead keys, not correctness.
	SweepInterval time.Duration
	// SweepBatch caps the keys removed by one sweep write (1024 when zero).
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

// Local serves an Engine on a single node: it stamps calls with the wall
// clock, coalesces concurrent writes into one Engine.Apply (one transaction
// and one fsync for boltdb) and sweeps expired keys in the background.
type Local struct {
	e    Engine
	opts LocalOptions

	mu    sync.Mutex
	queue []*writeReq
	busy  bool // a caller is applying a batch
	// planner makes room in each batch for a bounded engine; it is set by
	// SetLimits and used only by the caller applying a batch.
	planner atomic.Pointer[Planner]

	// life is held shared by every call and exclusively by Close, so Close
	// waits for in-flight calls and the engine is never used after Close.
	life   sync.RWMutex
	closed atomic.Bool
	stop   chan struct{}
	swept  sync.WaitGroup
}

var _ Store = (*Local)(nil)

// writeReq is one caller's write waiting in the group-commit queue.
type writeReq struct {
	op   Op
	err  error
	lead bool // woken to apply the queue rather than with a result
	done chan struct{}
}

// NewLocal wraps e. The Local owns e: Close closes it.
func NewLocal(e Engine, opts LocalOptions) *Local {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = time.Second
	}
	if opts.SweepBatch <= 0 {
		opts.SweepBatch = 1024
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Local{e: e, opts: opts, stop: make(chan struct{})}
	if opts.SweepInterval > 0 {
		l.swept.Add(1)
		go l.sweepLoop()
	}
	return l
}

// Engine returns the wrapped engine (for stats and hashing).
func (l *Local) Engine() Engine { return l.e }

func (l *Local) now() int64 { return l.opts.Clock().UnixNano() }

func (l *Local) span(ctx context.Context, method string, n int) (context.Context, trace.Span) {
	if l.opts.Tracer == nil {
		return ctx, nil
	}
	ctx, sp := l.opts.Tracer.Start(ctx, l.opts.Driver+":"+method)
	if sp.IsRecording() {
		sp.SetAttributes(attribute.Int("kv.keys", n))
	}
	return ctx, sp
}

func endSpan(sp trace.Span, err error) {
	if sp == nil {
		return
	}
	if err != nil {
		sp.RecordError(err)
		sp.SetStatus(codes.Error, err.Error())
	}
	sp.End()
}

// Has implements Store.
func (l *Local) Has(ctx context.Context, keys []string) ([]string, error) {
	l.life.RLock()
	defer l.life.RUnlock()
	if l.closed.Load() {
		return nil, ErrClosed
	}
	_, sp := l.span(ctx, "has", len(keys))
	out, err := l.e.Has(l.now(), keys)
	endSpan(sp, err)
	return out, err //nolint:wrapcheck // the engine's errors are already ours
}

// MGet implements Store.
func (l *Local) MGet(ctx context.Context, keys []string) ([]Item, error) {
	l.life.RLock()
	defer l.life.RUnlock()
	if l.closed.Load() {
		return nil, ErrClosed
	}
	_, sp := l.span(ctx, "mget", len(keys))
	out, err := l.e.MGet(l.now(), keys)
	endSpan(sp, err)
	return out, err //nolint:wrapcheck
}

// TTL implements Store.
func (l *Local) TTL(ctx context.Context, keys []string) ([]Item, error) {
	l.life.RLock()
	defer l.life.RUnlock()
	if l.closed.Load() {
		return nil, ErrClosed
	}
	_, sp := l.span(ctx, "ttl", len(keys))
	out, err := l.e.TTL(l.now(), keys)
	endSpan(sp, err)
	return out, err //nolint:wrapcheck
}

// Set implements Store.
func (l *Local) Set(ctx context.Context, items []Item) error {
	return l.traced(ctx, "set", len(items), Op{Kind: OpSet, Items: items})
}

// MExpire implements Store.
func (l *Local) MExpire(ctx context.Context, items []Item) error {
	return l.traced(ctx, "mexpire", len(items), Op{Kind: OpMExpire, Items: items})
}

// Delete implements Store.
func (l *Local) Delete(ctx context.Context, keys []string) error {
	return l.traced(ctx, "delete", len(keys), Op{Kind: OpDelete, Keys: keys})
}

// Clear implements Store.
func (l *Local) Clear(ctx context.Context) error {
	return l.traced(ctx, "clear", 0, Op{Kind: OpClear})
}

func (l *Local) traced(ctx context.Context, method string, n int, op Op) error {
	ctx, sp := l.span(ctx, method, n)
	err := l.write(ctx, op)
	endSpan(sp, err)
	return err
}

// write applies op and returns once it is applied (and, for a persistent
// engine, synced). A writer that finds no batch in flight applies its op at
// once; writers arriving meanwhile queue, and when the batch in flight ends
// the first of them applies the whole queue in one Engine.Apply. So N
// concurrent writers cost about two fsyncs, not N, and a lone writer pays
// no queueing. Once queued a write is not abandoned on ctx cancellation:
// its outcome would be unknown.
func (l *Local) write(ctx context.Context, op Op) error {
	l.life.RLock()
	defer l.life.RUnlock()
	if l.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err //nolint:wrapcheck // context errors are returned as is
	}
	l.mu.Lock()
	if l.busy {
		r := &writeReq{op: op, done: make(chan struct{})}
		l.queue = append(l.queue, r)
		l.mu.Unlock()
		<-r.done
		if r.lead {
			l.applyQueue(r)
		}
		return r.err
	}
	l.busy = true
	l.mu.Unlock()

	r := writeReq{op: op}
	l.applyBatch([]*writeReq{&r})
	l.handOff()
	return r.err
}

// applyQueue applies everything queued (self included) as one batch.
func (l *Local) applyQueue(self *writeReq) {
	l.mu.Lock()
	batch := l.queue
	l.queue = nil
	l.mu.Unlock()
	l.applyBatch(batch)
	l.handOff()
	for _, w := range batch {
		if w != self {
			close(w.done)
		}
	}
}

// handOff passes the turn to the first queued writer, or ends it.
func (l *Local) handOff() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 {
		l.busy = false
		return
	}
	next := l.queue[0]
	next.lead = true
	close(next.done)
}

// applyBatch applies the batch's writes in one Engine.Apply, after the
// eviction that makes room for them when the engine is bounded.
func (l *Local) applyBatch(batch []*writeReq) {
	now := l.now()
	ops := make([]Op, len(batch), len(batch)+1)
	for i, w := range batch {
		ops[i] = w.op
		ops[i].Now = now
	}
	first := 0
	if p := l.planner.Load(); p != nil {
		ev, t := p.Plan(ops, now)
		defer p.Done(t)
		if ev != nil {
			ops = append([]Op{*ev}, ops...)
			first = 1
		}
	}
	errs, err := l.e.Apply(0, ops)
	for i, w := range batch {
		switch {
		case err != nil:
			w.err = fmt.Errorf("apply: %w", err)
		case first+i < len(errs):
			w.err = l.storageErr(errs[first+i])
		}
	}
}

// storageErr names the storage in a refusal for want of room.
func (l *Local) storageErr(err error) error {
	if err != nil && l.opts.Storage != "" && errors.Is(err, ErrFull) {
		return fmt.Errorf("storage %q: %w", l.opts.Storage, err)
	}
	return err
}

// SetLimits bounds the engine (which must be Evictable) with lim and
// starts planning evictions for it. Call it before serving: it applies an
// OpLimit, which fails while the engine holds more than lim allows.
func (l *Local) SetLimits(ctx context.Context, lim Limits) error {
	ev, ok := l.e.(Evictable)
	if !ok {
		return fmt.Errorf("%w: the %s driver cannot be bounded", ErrBadLimit, l.opts.Driver)
	}
	if err := l.write(ctx, Op{Kind: OpLimit, Limits: lim}); err != nil {
		return err
	}
	if lim.Bounded() {
		l.planner.Store(NewPlanner(ev, l.opts.EvictionSamples))
	} else {
		l.planner.Store(nil)
	}
	return nil
}

func (l *Local) sweepLoop() {
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

// Sweep removes expired keys now, in batches of SweepBatch, for at most a
// few batches so one sweep never monopolises the write path.
func (l *Local) Sweep(ctx context.Context) {
	const maxBatchesPerSweep = 16
	if l.closed.Load() {
		return
	}
	for range maxBatchesPerSweep {
		items, err := l.e.Expired(l.now(), l.opts.SweepBatch)
		if err != nil {
			l.opts.Logger.Warn("expiry sweep: scan failed", "driver", l.opts.Driver, "err", err)
			return
		}
		if len(items) == 0 {
			return
		}
		if err := l.write(ctx, Op{Kind: OpExpire, Items: items}); err != nil {
			l.opts.Logger.Warn("expiry sweep: apply failed", "driver", l.opts.Driver, "err", err)
			return
		}
		if len(items) < l.opts.SweepBatch {
			return
		}
	}
}

// Close stops the sweeper, waits for calls in flight (queued writes are
// applied, not dropped) and closes the engine.
func (l *Local) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	close(l.stop)
	l.swept.Wait()
	l.life.Lock()
	defer l.life.Unlock()
	return l.e.Close() //nolint:wrapcheck
}
