package log

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// countingStore counts reads that reach the store.
type countingStore struct {
	*raft.InmemStore
	reads int
}

func (s *countingStore) GetLog(idx uint64, l *raft.Log) error {
	s.reads++
	return s.InmemStore.GetLog(idx, l)
}

func entries(from, n, size int) []*raft.Log {
	out := make([]*raft.Log, n)
	for i := range out {
		out[i] = &raft.Log{Index: uint64(from + i), Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, size)}
	}
	return out
}

func TestSizedCache_BoundedByBytes(t *testing.T) {
	store := &countingStore{InmemStore: raft.NewInmemStore()}
	per := entrySize(entries(1, 1, 1000)[0])
	c := newSizedCache(store, 64, 10*per)
	if err := c.StoreLogs(entries(1, 30, 1000)); err != nil {
		t.Fatal(err)
	}
	if c.bytes > 10*per || c.lo != 21 || c.hi != 30 {
		t.Fatalf("cache holds %d bytes, %d..%d; want at most %d bytes, 21..30", c.bytes, c.lo, c.hi, 10*per)
	}
	var l raft.Log
	for i := uint64(21); i <= 30; i++ {
		if err := c.GetLog(i, &l); err != nil || l.Index != i {
			t.Fatalf("GetLog(%d) = %d, %v", i, l.Index, err)
		}
	}
	if store.reads != 0 {
		t.Fatalf("%d reads of cached entries reached the store", store.reads)
	}
	if err := c.GetLog(3, &l); err != nil || l.Index != 3 || store.reads != 1 {
		t.Fatalf("an entry dropped from the cache: %d, %v, %d reads", l.Index, err, store.reads)
	}
	if a := c.AvgEntryBytes(); a != int64(per) {
		t.Fatalf("average entry %d bytes, want %d", a, per)
	}
	// The count bound holds too, and a truncated log empties the cache.
	if err := c.StoreLogs(entries(31, 100, 1)); err != nil {
		t.Fatal(err)
	}
	if n := c.hi - c.lo + 1; n > 64 {
		t.Fatalf("cache holds %d entries, more than its 64 slots", n)
	}
	if err := c.StoreLogs(entries(100, 1, 1)); err != nil { // a follower's log rewritten from 100
		t.Fatal(err)
	}
	if c.lo != 100 || c.hi != 100 {
		t.Fatalf("after a gap the cache holds %d..%d, want 100..100", c.lo, c.hi)
	}
	if err := c.DeleteRange(1, 100); err != nil || c.hi != 0 || c.bytes != 0 {
		t.Fatalf("DeleteRange: %v, cache %d..%d %d bytes", err, c.lo, c.hi, c.bytes)
	}
	if err := c.GetLog(100, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog of a deleted entry: %v", err)
	}
}
