package drivers

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Committer is where an EngineStore's writes are committed and what its
// reads wait for: this node alone (Standalone's group commit), or a cluster's
// log (package cluster). The committer stamps writes with its clock, and
// says what time a read judges expiry by: everything else about serving an
// Engine as a Store is the same on one node and in a cluster, and lives in
// EngineStore.
type Committer interface {
	// ReadTime readies a read (waiting for whatever it must see first) and
	// returns the time its expiry is judged by.
	ReadTime(ctx context.Context) (int64, error)
	// Commit stamps op with the committer's clock and returns once it is
	// committed (Standalone: applied; a cluster: in the log, and reads on this
	// node wait for it): nil, the engine's refusal, or why it could not be
	// committed.
	Commit(ctx context.Context, op Op) error
}

// ReadyReporter is a Committer or Store that can tell, without waiting,
// that a read now would not wait for anything (other nodes, the log).
type ReadyReporter interface {
	ReadsReady() bool
}

// EngineStoreOptions configures an EngineStore.
type EngineStoreOptions struct {
	// SpanPrefix starts the store's span names: "memory:set" for a local
	// store (its driver), "sessions:set" in a cluster (its storage name,
	// since every replicated storage is served by the same code).
	SpanPrefix string
	// Tracer opens one child span per call; nil means none.
	Tracer trace.Tracer
	// OnRead, when set, is told the keys each read found (a cluster's
	// follower samples them for the leader's lru).
	OnRead func(keys []string)
	// Owned closes the engine on Close (Standalone). A cluster's stores leave
	// it to the node.
	Owned bool
}

// EngineStore serves an Engine as a Store through a Committer: reads go
// to the engine at the committer's read time, writes through the
// committer, each call in a span. Close waits for calls in flight; calls
// after it return ErrClosed.
type EngineStore struct {
	e    Engine
	c    Committer
	opts EngineStoreOptions

	// life is held shared by every call and exclusively by Close, so Close
	// waits for calls in flight and an owned engine is never used after.
	life   sync.RWMutex
	closed atomic.Bool
}

var _ Store = (*EngineStore)(nil)

// ReadsReady reports whether a read now would not wait for the committer:
// false when the committer cannot tell (drivers.ReadyReporter).
func (s *EngineStore) ReadsReady() bool {
	r, ok := s.c.(ReadyReporter)
	return ok && r.ReadsReady()
}

// NewEngineStore serves e through c.
func NewEngineStore(e Engine, c Committer, opts EngineStoreOptions) *EngineStore {
	return &EngineStore{e: e, c: c, opts: opts}
}

// Engine returns the served engine (for stats and hashing).
func (s *EngineStore) Engine() Engine { return s.e }

// Has implements Store.
func (s *EngineStore) Has(ctx context.Context, keys []string) ([]string, error) {
	var found []string
	err := s.read(ctx, "has", len(keys), func(now int64) (err error) {
		found, err = s.e.Has(now, keys)
		if s.opts.OnRead != nil && len(found) > 0 {
			s.opts.OnRead(found)
		}
		return err
	})
	return found, err
}

// MGet implements Store.
func (s *EngineStore) MGet(ctx context.Context, keys []string) ([]Item, error) {
	var items []Item
	err := s.read(ctx, "mget", len(keys), func(now int64) (err error) {
		items, err = s.e.MGet(now, keys)
		if s.opts.OnRead != nil && len(items) > 0 {
			s.opts.OnRead(ItemKeys(items))
		}
		return err
	})
	return items, err
}

// TTL implements Store.
func (s *EngineStore) TTL(ctx context.Context, keys []string) ([]Item, error) {
	var items []Item
	err := s.read(ctx, "ttl", len(keys), func(now int64) (err error) {
		items, err = s.e.TTL(now, keys)
		return err
	})
	return items, err
}

// Set implements Store.
func (s *EngineStore) Set(ctx context.Context, items []Item) error {
	return s.write(ctx, "set", len(items), Op{Kind: OpSet, Items: items})
}

// MExpire implements Store.
func (s *EngineStore) MExpire(ctx context.Context, items []Item) error {
	return s.write(ctx, "mexpire", len(items), Op{Kind: OpMExpire, Items: items})
}

// Delete implements Store.
func (s *EngineStore) Delete(ctx context.Context, keys []string) error {
	return s.write(ctx, "delete", len(keys), Op{Kind: OpDelete, Keys: keys})
}

// Clear implements Store.
func (s *EngineStore) Clear(ctx context.Context) error {
	return s.write(ctx, "clear", 0, Op{Kind: OpClear})
}

// Close waits for calls in flight and refuses later ones; it closes the
// engine if the store owns it.
func (s *EngineStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.life.Lock()
	defer s.life.Unlock()
	if s.opts.Owned {
		return s.e.Close() // the engine's errors are already ours
	}
	return nil
}

func (s *EngineStore) read(ctx context.Context, method string, n int, get func(now int64) error) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	ctx, sp := s.span(ctx, method, n)
	now, err := s.c.ReadTime(ctx)
	if err == nil {
		err = get(now)
	}
	endSpan(sp, err)
	return err // the committer's and engine's errors are already ours
}

func (s *EngineStore) write(ctx context.Context, method string, n int, op Op) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	ctx, sp := s.span(ctx, method, n)
	err := s.c.Commit(ctx, op)
	endSpan(sp, err)
	return err // the committer's errors are already ours
}

// guard runs fn as a call: Close waits for it, and after Close it does
// not run.
func (s *EngineStore) guard(fn func() error) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	return fn()
}

func (s *EngineStore) span(ctx context.Context, method string, n int) (context.Context, trace.Span) {
	if s.opts.Tracer == nil {
		return ctx, nil
	}
	ctx, sp := s.opts.Tracer.Start(ctx, s.opts.SpanPrefix+":"+method)
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

// ItemKeys returns the keys of items.
func ItemKeys(items []Item) []string {
	keys := make([]string, len(items))
	for i := range items {
		keys[i] = items[i].Key
	}
	return keys
}
