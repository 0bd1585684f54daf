package memory

import (
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/kvnode/kvnode/drivers"
)

var _ drivers.Engine = (*Engine)(nil)

// entry is what the map holds per key, by value, to keep the per-key
// footprint small: keys without expiry cost no extra allocation.
type entry struct {
	// val holds the value's bytes as a string header: 8 bytes smaller than
	// a slice, which matters at millions of keys. The bytes are the slice
	// handed to Apply (owned, never modified), viewed through unsafe.
	val string
	// exp is nil for a key without expiry. An expiry record is never
	// modified after it is published except for its heap position, so a
	// snapshot may share it.
	exp *expiry
}

// expiry is the TTL of one key and its position in the expiry heap. It is
// laid out to fit the 32-byte allocation class (a plain struct of strings
// would take 48): the key is kept as pointer and length, and the timeout
// as a pointer to a string shared between keys with the same timeout.
type expiry struct {
	keyp *byte
	keyn uint32
	// idx is the record's position in Engine.heap; only the heap code,
	// under the write lock, reads or writes it.
	idx      int32
	timeout  *string
	deadline int64
}

func newExpiry(key string, timeout *string, deadline int64) *expiry {
	return &expiry{keyp: unsafe.StringData(key), keyn: uint32(len(key)), timeout: timeout, deadline: deadline} //nolint:gosec // validate bounds key length
}

func (x *expiry) key() string { return unsafe.String(x.keyp, x.keyn) }

// maxKeyLen is the longest key an expiry record can describe.
const maxKeyLen = math.MaxUint32

// visible reports whether the entry is served at now.
func (en entry) visible(now int64) bool {
	return en.exp == nil || en.exp.deadline > now
}

// ownedString views an owned, never-again-modified slice as a string
// without copying.
func ownedString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// valueBytes returns a stored value for a reader. The slice aliases the
// stored bytes and has no spare capacity, so appending to it copies; the
// reader must not write into it.
func valueBytes(s string) []byte {
	if len(s) == 0 {
		return emptyValue
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// ttl returns the entry's timeout text and deadline ("", 0 without expiry).
func (en entry) ttl() (string, int64) {
	if en.exp == nil {
		return "", 0
	}
	return *en.exp.timeout, en.exp.deadline
}

// emptyValue is returned for stored empty values so callers always get a
// non-nil slice; it has zero capacity, so nobody can write through it.
var emptyValue = []byte{}

// Engine is the in-memory drivers.Engine. The zero value is not usable; call
// New.
type Engine struct {
	mu     sync.RWMutex
	m      map[string]entry
	heap   expiryHeap
	closed bool
	// timeouts shares equal timeout strings between keys; see intern.
	timeouts internCache

	// Counters are written under mu and read without it by Stats.
	keys    atomic.Int64
	bytes   atomic.Int64
	applied atomic.Uint64
}

// New returns an empty engine.
func New() *Engine {
	return &Engine{m: make(map[string]entry)}
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
		if en, ok := e.m[k]; ok && en.visible(now) {
			out = append(out, k)
		}
	}
	return out, nil
}

// MGet returns Key and Value of the keys that exist and are not expired at
// now, each once. The values share the engine's storage: treat them as
// read-only.
func (e *Engine) MGet(now int64, keys []string) ([]drivers.Item, error) {
	keys = collapse(keys)
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, drivers.ErrClosed
	}
	out := make([]drivers.Item, 0, len(keys))
	for _, k := range keys {
		en, ok := e.m[k]
		if !ok || !en.visible(now) {
			continue
		}
		out = append(out, drivers.Item{Key: k, Value: valueBytes(en.val)})
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
		en, ok := e.m[k]
		if !ok || !en.visible(now) {
			continue
		}
		it := drivers.Item{Key: k}
		if en.exp != nil {
			it.Timeout, it.Deadline = *en.exp.timeout, en.exp.deadline
		}
		out = append(out, it)
	}
	return out, nil
}

// AppliedIndex returns the index passed to the last successful Apply (or
// carried by the last restored snapshot). It is not persisted: a memory
// engine is rebuilt from a snapshot and the log.
func (e *Engine) AppliedIndex() uint64 { return e.applied.Load() }

// Stats reports the keys held (expired but unswept included) and the bytes of
// their keys and values, in O(1).
func (e *Engine) Stats() drivers.Stats {
	return drivers.Stats{Keys: e.keys.Load(), Bytes: e.bytes.Load()}
}

// Close drops the state; later calls return drivers.ErrClosed. Closing twice
// is harmless.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	e.m, e.heap = nil, nil
	e.keys.Store(0)
	e.bytes.Store(0)
	return nil
}

// internCache is a small direct-mapped cache of timeout strings, indexed by
// the deadline's second. Clients setting keys with the same TTL in the same
// second send the same text; sharing one copy saves an allocation per key
// (~32 bytes for a 25-character RFC 3339 string). A miss just replaces the
// slot, so the cost is one string comparison. It never changes what is
// stored, only which copy of equal bytes is kept.
type internCache [64]*string

// noTimeout is shared by every record whose timeout text is empty.
var noTimeout = new(string)

func (c *internCache) slot(deadline int64) **string {
	return &c[uint64(deadline/1e9)%uint64(len(c))] //nolint:gosec // any bits will do for a cache index
}

func (c *internCache) intern(s string, deadline int64) *string {
	if s == "" {
		return noTimeout
	}
	slot := c.slot(deadline)
	if *slot == nil || **slot != s {
		*slot = &s
	}
	return *slot
}

// internBytes is intern for a scratch buffer: it copies b only on a miss.
func (c *internCache) internBytes(b []byte, deadline int64) *string {
	if len(b) == 0 {
		return noTimeout
	}
	slot := c.slot(deadline)
	if *slot == nil || **slot != string(b) {
		s := string(b)
		*slot = &s
	}
	return *slot
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
