package fsm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
)

var _ raft.BatchingFSM = (*FSM)(nil)

// FSM applies the event log to the replicated storages. raft calls Apply,
// ApplyBatch, Snapshot and Restore from one goroutine; everything else
// (reads through Engine, AppliedIndex, WaitApplied, Hash) is safe to call
// concurrently with them.
type FSM struct {
	engines  map[string]drivers.Engine
	names    []string // sorted: the order of snapshots and hashes
	log      *slog.Logger
	spoolDir string

	applied atomic.Uint64
	// clock is the largest Op.Now of the entries applied: see Clock.
	clock atomic.Int64
	// mu guards advanced, which is closed and replaced each time applied
	// moves, waking every WaitApplied at once.
	mu       sync.Mutex
	advanced chan struct{}

	obs atomic.Pointer[observerRef] // metrics; see SetObserver

	outcomes outcomes // see Outcome
}

// Option configures an FSM.
type Option func(*FSM)

// WithSpoolDir sets where Restore spools an incoming snapshot while it
// verifies the checksum (os.TempDir when unset). Use the data directory: a
// snapshot can be as large as the state.
func WithSpoolDir(dir string) Option { return func(f *FSM) { f.spoolDir = dir } }

// New returns an FSM over storages, keyed by storage name. The FSM does not
// own the engines: close them after raft has shut down. A nil logger
// discards.
func New(storages map[string]drivers.Engine, logger *slog.Logger, opts ...Option) *FSM {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &FSM{
		engines:  maps.Clone(storages),
		names:    slices.Sorted(maps.Keys(storages)),
		log:      logger.With("component", "fsm"),
		advanced: make(chan struct{}),
	}
	if f.engines == nil {
		f.engines = map[string]drivers.Engine{}
	}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Engine returns the engine replicating the named storage, for reads.
func (f *FSM) Engine(name string) (drivers.Engine, bool) {
	e, ok := f.engines[name]
	return e, ok
}

// Names returns the replicated storage names, sorted.
func (f *FSM) Names() []string { return slices.Clone(f.names) }

// AppliedIndex is the index of the last log entry the FSM has applied (or
// of the last restored snapshot's state). Entries raft does not pass to an
// FSM (no-ops, barriers) do not move it.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Clock is the cluster's replicated clock at the applied index, in Unix
// nanoseconds: the largest Now stamped by a leader on any entry applied so
// far (writes, expiries and ticks). It is a function of the log alone, so
// every replica at the same index has the same Clock, and it never goes
// backwards along the log. 0 means unknown (nothing applied since a
// snapshot of a version that did not record it).
func (f *FSM) Clock() int64 { return f.clock.Load() }

// WaitApplied blocks until AppliedIndex is at least index or ctx ends. Pass
// the index of an entry that reaches the FSM (a command or configuration
// change, such as the index of an ApplyFuture): an index held by a no-op or
// barrier is only reached once a later command is applied.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.mu.Lock()
		ch := f.advanced
		f.mu.Unlock()
		// Checked after taking the channel: an advance that happens from here
		// on closes ch, so it cannot be missed.
		if f.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("fsm: wait for index %d (applied %d): %w", index, f.applied.Load(), ctx.Err())
		}
	}
}

// setApplied publishes index as applied and wakes the waiters.
func (f *FSM) setApplied(index uint64) {
	f.applied.Store(index)
	f.mu.Lock()
	close(f.advanced)
	f.advanced = make(chan struct{})
	f.mu.Unlock()
}

// Hash returns every replicated engine's Hash by storage name.
func (f *FSM) Hash() (map[string][]byte, error) {
	out := make(map[string][]byte, len(f.engines))
	for _, name := range f.names {
		h, err := f.engines[name].Hash()
		if err != nil {
			return nil, fmt.Errorf("fsm: hash %q: %w", name, err)
		}
		out[name] = h
	}
	return out, nil
}

// StateHash is one SHA-256 over every storage's name and Hash, in name
// order: equal on replicas holding the same logical state.
func (f *FSM) StateHash() ([]byte, error) {
	hs, err := f.Hash()
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	var buf []byte
	for _, name := range f.names {
		buf = binary.AppendUvarint(buf[:0], uint64(len(name)))
		buf = append(buf, name...)
		buf = binary.AppendUvarint(buf, uint64(len(hs[name])))
		buf = append(buf, hs[name]...)
		h.Write(buf)
	}
	return h.Sum(nil), nil
}
