package memory

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/kvnode/kvnode/drivers"
)

var _ drivers.Evictable = (*Engine)(nil)

// Engine is the in-memory drivers.Engine. The zero value is not usable; call
// New.
type Engine struct {
	mu     sync.RWMutex
	tab    table
	st     store
	heap   expiryHeap
	closed bool
	// live counts snapshots not yet released; see table.
	live int
	// timeouts shares equal timeout strings between keys; see intern.
	timeouts internCache
	// limits are set by OpLimit (or a restored snapshot); lru is set
	// while they ask for the lru policy, and keys then carry stamps.
	limits drivers.Limits
	lru    bool

	// Counters are written under mu and read without it by Stats.
	keys    atomic.Int64
	bytes   atomic.Int64
	expires atomic.Int64 // keys with a deadline
	applied atomic.Uint64
	// Node-local counts of keys evicted and writes refused as full.
	evicted, rejected atomic.Int64
	// lastEvict is the Seq of the last OpEvict applied; under mu.
	lastEvict uint64
	published atomic.Pointer[drivers.Limits] // limits, for Stats
}

// New returns an empty engine.
func New() *Engine { return newEngine(defaultSlabSize) }

// newEngine lets tests use tiny slabs, so that compaction runs often.
func newEngine(slabSize int) *Engine {
	return &Engine{tab: newTable(maphash.MakeSeed(), ^uint64(0)), st: newStore(slabSize)}
}

// Has returns the keys that exist and are not expired at now, each once.
func (e *Engine) Has(now int64, keys []string) ([]string, error) {
	keys = collapse(keys)
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, drivers.ErrClosed
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if p, ok := e.tab.find(e.st.slabs, k); ok && p.entry().visible(now) {
			e.touchFound(&p, now)
			out = append(out, k)
		}
	}
	return out, nil
}

// MGet returns Key and Value of the keys that exist and are not expired at
// now, each once. The values share the engine's storage: treat them as
// read-only. They stay valid and unchanged after the call, whatever is
// written later (see slab.go).
func (e *Engine) MGet(now int64, keys []string) ([]drivers.Item, error) {
	keys = collapse(keys)
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, drivers.ErrClosed
	}
	out := make([]drivers.Item, 0, len(keys))
	for _, k := range keys {
		p, ok := e.tab.find(e.st.slabs, k)
		if !ok || !p.entry().visible(now) {
			continue
		}
		e.touchFound(&p, now)
		out = append(out, drivers.Item{Key: k, Value: valueBytes(p.val)})
	}
	return out, nil
}

// TTL returns Key, Timeout (as it was sent, "" for no expiry) and Deadline of
// the keys that exist and are not expired at now, each once.
func (e *Engine) TTL(now int64, keys []string) ([]drivers.Item, error) {
	keys = collapse(keys)
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, drivers.ErrClosed
	}
	out := make([]drivers.Item, 0, len(keys))
	for _, k := range keys {
		en, ok := e.tab.get(e.st.slabs, k)
		if !ok || !en.visible(now) {
			continue
		}
		it := drivers.Item{Key: k}
		it.Timeout, it.Deadline = en.ttl()
		out = append(out, it)
	}
	return out, nil
}

// AppliedIndex returns the index passed to the last successful Apply (or
// carried by the last restored snapshot). It is not persisted: a memory
// engine is rebuilt from a snapshot and the log.
func (e *Engine) AppliedIndex() uint64 { return e.applied.Load() }

// Stats reports the keys held (expired but unswept included), the bytes of
// their keys and values, the usage and the limits, in O(1).
func (e *Engine) Stats() drivers.Stats {
	s := drivers.Stats{Keys: e.keys.Load(), Bytes: e.bytes.Load(), Evicted: e.evicted.Load(), Rejected: e.rejected.Load()}
	s.Usage = drivers.Usage(s.Keys, s.Bytes, e.expires.Load())
	if l := e.published.Load(); l != nil {
		s.Limits = *l
	}
	return s
}

// Accounting implements drivers.Evictable: the counts under the read lock,
// so an Apply is either wholly in them or not at all.
func (e *Engine) Accounting() drivers.Accounting {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return drivers.Accounting{Keys: e.keys.Load(), Usage: e.usage(), Limits: e.limits, LastEvict: e.lastEvict}
}

// usage is Stats().Usage for callers holding the lock.
func (e *Engine) usage() int64 {
	return drivers.Usage(e.keys.Load(), e.bytes.Load(), e.expires.Load())
}

// Close drops the state; later calls return drivers.ErrClosed. Closing twice
// is harmless.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	e.tab.reset()
	e.st = newStore(e.st.slabSize)
	e.heap = nil
	e.keys.Store(0)
	e.bytes.Store(0)
	e.expires.Store(0)
	return nil
}

// linearDedupMax is the request size up to which duplicates are found by
// comparing keys pairwise, which beats building a set for small requests.
const linearDedupMax = 16

// collapse returns keys with later duplicates removed, keeping the order of
// first occurrence. It allocates only when there is a duplicate.
func collapse(keys []string) []string {
	if len(keys) < 2 {
		return keys
	}
	if len(keys) <= linearDedupMax {
		for i := 1; i < len(keys); i++ {
			for j := range i {
				if keys[i] == keys[j] {
					return collapseSlow(keys)
				}
			}
		}
		return keys
	}
	return collapseSlow(keys)
}

func collapseSlow(keys []string) []string {
	seen := make(map[string]struct{}, len(keys))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, k)
	}
	return out
}
