package log

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// sizedCache keeps the most recent log entries in memory, like
// raft.LogCache, but bounded by their bytes as well as their number: an
// entry of a batched write can carry hundreds of items, and 512 of those
// (raft.LogCache's count) held 30 MB of a node's heap. The leader reads
// recent entries from here to replicate them, and followers to apply them;
// older ones come from raft.db. It also keeps the average entry size, by
// which the cluster bounds the log's length in bytes.
type sizedCache struct {
	store raft.LogStore

	mu    sync.RWMutex
	ring  []*raft.Log // by index modulo its length
	bytes int         // of the entries in ring
	// lo..hi are the indexes the ring may hold (hi 0: none).
	lo, hi  uint64
	maxSize int

	// avg is the moving average of entry sizes in bytes, scaled by 2^8.
	avg atomic.Int64
}

func newSizedCache(store raft.LogStore, entries, maxBytes int) *sizedCache {
	return &sizedCache{store: store, ring: make([]*raft.Log, entries), maxSize: maxBytes}
}

// entrySize is what an entry costs in the cache.
func entrySize(l *raft.Log) int { return len(l.Data) + len(l.Extensions) + 64 }

// AvgEntryBytes is the moving average size of the entries stored lately.
func (c *sizedCache) AvgEntryBytes() int64 { return c.avg.Load() >> 8 }

// GetLog implements raft.LogStore.
func (c *sizedCache) GetLog(idx uint64, log *raft.Log) error {
	c.mu.RLock()
	cached := c.ring[idx%uint64(len(c.ring))]
	c.mu.RUnlock()
	if cached != nil && cached.Index == idx {
		*log = *cached
		return nil
	}
	return c.store.GetLog(idx, log) // raft matches ErrLogNotFound
}

// StoreLog implements raft.LogStore.
func (c *sizedCache) StoreLog(log *raft.Log) error { return c.StoreLogs([]*raft.Log{log}) }

// StoreLogs implements raft.LogStore: the entries are cached once stored.
func (c *sizedCache) StoreLogs(logs []*raft.Log) error {
	if err := c.store.StoreLogs(logs); err != nil {
		return fmt.Errorf("store logs: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		c.note(l)
		if c.hi != 0 && l.Index != c.hi+1 {
			c.clear() // not contiguous (a follower's log was truncated)
		}
		slot := &c.ring[l.Index%uint64(len(c.ring))]
		if *slot != nil {
			c.bytes -= entrySize(*slot)
			c.lo = max(c.lo, (*slot).Index+1)
		}
		*slot = l
		c.bytes += entrySize(l)
		c.hi = l.Index
		if c.lo == 0 {
			c.lo = l.Index
		}
		for c.bytes > c.maxSize && c.lo < c.hi {
			c.drop(c.lo)
			c.lo++
		}
	}
	return nil
}

// note adds an entry's size to the moving average (weight 1/64).
func (c *sizedCache) note(l *raft.Log) {
	s := int64(entrySize(l)) << 8
	a := c.avg.Load()
	if a == 0 {
		c.avg.Store(s)
		return
	}
	c.avg.Store(a + (s-a)/64)
}

func (c *sizedCache) drop(idx uint64) {
	slot := &c.ring[idx%uint64(len(c.ring))]
	if *slot != nil && (*slot).Index == idx {
		c.bytes -= entrySize(*slot)
		*slot = nil
	}
}

func (c *sizedCache) clear() {
	clear(c.ring)
	c.bytes, c.lo, c.hi = 0, 0, 0
}

// FirstIndex implements raft.LogStore.
func (c *sizedCache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }

// LastIndex implements raft.LogStore.
func (c *sizedCache) LastIndex() (uint64, error) { return c.store.LastIndex() }

// DeleteRange implements raft.LogStore; the cache is emptied.
func (c *sizedCache) DeleteRange(lo, hi uint64) error {
	c.mu.Lock()
	c.clear()
	c.mu.Unlock()
	return c.store.DeleteRange(lo, hi)
}

// IsMonotonic passes on the wrapped store's answer: raft type-asserts
// raft.MonotonicLogStore (raft-wal is one), which this cache would hide.
func (c *sizedCache) IsMonotonic() bool {
	m, ok := c.store.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}
