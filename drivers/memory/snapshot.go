package memory

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"

	"github.com/kvnode/kvnode/drivers"
)

// Snapshot format, versions 1 and 2. All integers are unsigned varints
// unless noted; strings and byte slices are a uvarint length followed by the
// bytes.
//
//	header  magic "KVNMEMSN" | version byte | applied index
//	        | version 2 only: max bytes | max keys | policy byte
//	        | entry count
//	entry   key | value | timeout | deadline (signed varint)   — count times,
//	        keys strictly ascending (bytewise)
//	trailer entry count again | CRC-32C of every byte before it (4 bytes LE)
//
// Sorted keys make the stream a deterministic function of the state, and a
// count in the header lets Restore size its map once. Version 2 carries the
// storage's limits; an unbounded storage still writes version 1, which
// older nodes read.
const (
	snapMagic     = "KVNMEMSN"
	snapVersion   = 1
	snapVersionV2 = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot captures the state in O(shards): it shares every shard's map
// with the engine and marks them copy-on-write, so Apply copies a shard
// before its first write to it while the snapshot is live. Values and expiry
// records are shared too, as neither is modified in place. Sorting and
// writing happen later, in WriteTo, without any lock.
func (e *Engine) Snapshot() (drivers.Snapshot, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, drivers.ErrClosed
	}
	e.live++
	return &snapshot{e: e, shards: e.tab.share(), slabs: slices.Clone(e.st.slabs), index: e.applied.Load(), limits: e.limits}, nil
}

type snapshot struct {
	e      *Engine
	shards [numShards]shard
	// slabs is the engine's slab list as it was: later compactions drop
	// slabs from the engine's list (and may reuse their ids), not from this
	// copy, and records are never modified, so every location in shards
	// stays valid here.
	slabs    [][]byte
	index    uint64
	limits   drivers.Limits
	released bool
}

// keyEntry locates one key of a snapshot: 16 bytes, where the key and
// value strings took 40; the list of every key is what a snapshot of a
// large storage allocates.
type keyEntry struct {
	l   loc
	exp *expiry
}

// sorted returns the snapshot's entries in ascending byte order of keys.
func (s *snapshot) sorted() []keyEntry {
	out := make([]keyEntry, 0, count(&s.shards))
	for i := range s.shards {
		s.shards[i].each(func(l loc, exp *expiry) { out = append(out, keyEntry{l, exp}) })
	}
	slices.SortFunc(out, func(a, b keyEntry) int { return strings.Compare(s.key(a.l), s.key(b.l)) })
	return out
}

// key returns the key stored at l.
func (s *snapshot) key(l loc) string {
	k, _, _ := record(s.slabs[l.id()], l.off())
	return k
}

// entry returns the key and entry stored at x.
func (s *snapshot) entry(x keyEntry) (string, entry) {
	k, v, _ := record(s.slabs[x.l.id()], x.l.off())
	return k, entry{val: v, exp: x.exp}
}

// WriteTo streams the snapshot in the format described above.
func (s *snapshot) WriteTo(w io.Writer) (int64, error) {
	if s.released {
		return 0, fmt.Errorf("memory: snapshot: %w", drivers.ErrClosed)
	}
	entries := s.sorted()
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	var crc uint32
	write := func(p []byte) error {
		crc = crc32.Update(crc, castagnoli, p)
		_, err := bw.Write(p)
		return err // wrapped once below
	}
	buf := []byte(snapMagic)
	if s.limits.Bounded() {
		buf = append(buf, snapVersionV2)
		buf = binary.AppendUvarint(buf, s.index)
		buf = appendLimits(buf, s.limits)
	} else {
		buf = append(buf, snapVersion)
		buf = binary.AppendUvarint(buf, s.index)
	}
	buf = binary.AppendUvarint(buf, uint64(len(entries)))
	if err := write(buf); err != nil {
		return cw.n, fmt.Errorf("memory: snapshot: %w", err)
	}
	for _, x := range entries {
		k, en := s.entry(x)
		buf = appendEntry(buf[:0], k, en)
		if err := write(buf); err != nil {
			return cw.n, fmt.Errorf("memory: snapshot: %w", err)
		}
	}
	buf = binary.AppendUvarint(buf[:0], uint64(len(entries)))
	crc = crc32.Update(crc, castagnoli, buf)
	buf = binary.LittleEndian.AppendUint32(buf, crc)
	if _, err := bw.Write(buf); err != nil {
		return cw.n, fmt.Errorf("memory: snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("memory: snapshot: %w", err)
	}
	return cw.n, nil
}

// Release drops the snapshot's maps. When no snapshot is live any more,
// the engine's shards stop being copy-on-write.
func (s *snapshot) Release() {
	if s.released {
		return
	}
	s.released = true
	s.shards = [numShards]shard{}
	s.slabs = nil
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	s.e.live--
	if s.e.live == 0 {
		s.e.tab.unshare()
	}
}

func appendEntry(buf []byte, k string, en entry) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(k)))
	buf = append(buf, k...)
	buf = binary.AppendUvarint(buf, uint64(len(en.val)))
	buf = append(buf, en.val...)
	timeout, deadline := en.ttl()
	buf = binary.AppendUvarint(buf, uint64(len(timeout)))
	buf = append(buf, timeout...)
	return binary.AppendVarint(buf, deadline)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err // passed through to WriteTo, which wraps
}

func appendLimits(buf []byte, l drivers.Limits) []byte {
	buf = binary.AppendUvarint(buf, uint64(l.MaxBytes)) // validated non-negative
	buf = binary.AppendUvarint(buf, uint64(l.MaxKeys))  // validated non-negative
	return append(buf, byte(l.Policy))
}

// Hash returns a SHA-256 digest of the logical state: for every key in
// ascending byte order, the key, value and timeout (each as a uvarint length
// and the bytes) and the deadline (8 bytes big-endian), expired but unswept
// keys included, then the limits when any is set. The applied index is not
// part of it.
func (e *Engine) Hash() ([]byte, error) {
	snap, err := e.Snapshot()
	if err != nil {
		return nil, err
	}
	s := snap.(*snapshot) // Snapshot returns only *snapshot
	defer s.Release()
	h := sha256.New()
	var buf []byte
	for _, x := range s.sorted() {
		k, en := s.entry(x)
		timeout, deadline := en.ttl()
		buf = binary.AppendUvarint(buf[:0], uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(en.val)))
		buf = append(buf, en.val...)
		buf = binary.AppendUvarint(buf, uint64(len(timeout)))
		buf = append(buf, timeout...)
		buf = binary.BigEndian.AppendUint64(buf, uint64(deadline))
		h.Write(buf)
	}
	if s.limits.Bounded() {
		h.Write(appendLimits(append(buf[:0], "limits"...), s.limits))
	}
	return h.Sum(nil), nil
}
