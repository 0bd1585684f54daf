package memory

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"

	"github.com/kvnode/kvnode/drivers"
)

// Snapshot format, version 1. All integers are unsigned varints unless
// noted; strings and byte slices are a uvarint length followed by the bytes.
//
//	header  magic "KVNMEMSN" | version byte | applied index | entry count
//	entry   key | value | timeout | deadline (signed varint)   — count times,
//	        keys strictly ascending (bytewise)
//	trailer entry count again | CRC-32C of every byte before it (4 bytes LE)
//
// Sorted keys make the stream a deterministic function of the state, and a
// count in the header lets Restore size its map once.
const (
	snapMagic   = "KVNMEMSN"
	snapVersion = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot captures the state by cloning the map under the read lock (a
// bulk copy of the table memory: values and expiry records are shared, as
// neither is ever modified in place). Sorting and writing happen later, in
// WriteTo, without any lock.
func (e *Engine) Snapshot() (drivers.Snapshot, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, drivers.ErrClosed
	}
	return &snapshot{m: maps.Clone(e.m), index: e.applied.Load()}, nil
}

type snapshot struct {
	m     map[string]entry
	index uint64
}

// sortedKeys returns the snapshot's keys in ascending byte order.
func (s *snapshot) sortedKeys() []string {
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// WriteTo streams the snapshot in the format described above.
func (s *snapshot) WriteTo(w io.Writer) (int64, error) {
	if s.m == nil {
		return 0, fmt.Errorf("memory: snapshot: %w", drivers.ErrClosed)
	}
	keys := s.sortedKeys()
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	var crc uint32
	write := func(p []byte) error {
		crc = crc32.Update(crc, castagnoli, p)
		_, err := bw.Write(p)
		return err //nolint:wrapcheck // wrapped once below
	}
	buf := append([]byte(snapMagic), snapVersion)
	buf = binary.AppendUvarint(buf, s.index)
	buf = binary.AppendUvarint(buf, uint64(len(keys)))
	if err := write(buf); err != nil {
		return cw.n, fmt.Errorf("memory: snapshot: %w", err)
	}
	for _, k := range keys {
		buf = appendEntry(buf[:0], k, s.m[k])
		if err := write(buf); err != nil {
			return cw.n, fmt.Errorf("memory: snapshot: %w", err)
		}
	}
	buf = binary.AppendUvarint(buf[:0], uint64(len(keys)))
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

// Release drops the snapshot's reference to the cloned map.
func (s *snapshot) Release() { s.m = nil }

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
	return n, err //nolint:wrapcheck // passed through to WriteTo, which wraps
}

// Hash returns a SHA-256 digest of the logical state: for every key in
// ascending byte order, the key, value and timeout (each as a uvarint length
// and the bytes) and the deadline (8 bytes big-endian), expired but unswept
// keys included. The applied index is not part of it.
func (e *Engine) Hash() ([]byte, error) {
	snap, err := e.Snapshot()
	if err != nil {
		return nil, err
	}
	s := snap.(*snapshot) //nolint:forcetypeassert // Snapshot returns only *snapshot
	defer s.Release()
	h := sha256.New()
	var buf []byte
	for _, k := range s.sortedKeys() {
		en := s.m[k]
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
	return h.Sum(nil), nil
}
