package boltdb

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/kvnode/kvnode/drivers"
)

// snapshotMagic starts every snapshot stream; the last byte is the format
// version.
const snapshotMagic = "kvnode-boltdb\x00\x00\x01"

// snapshot is a read transaction held open: a point-in-time view of the file
// that WriteTo copies while Apply goes on. It holds a reference to its file,
// so that a Restore or Close meanwhile leaves the file open for it.
type snapshot struct {
	tx   *bolt.Tx
	file *handle
	log  *slog.Logger
	once sync.Once
}

// Snapshot opens a read transaction; it must be Released.
func (e *Engine) Snapshot() (drivers.Snapshot, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.cur == nil {
		return nil, drivers.ErrClosed
	}
	tx, err := e.cur.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("boltdb: %s: snapshot: %w", e.cfg.File, err)
	}
	e.cur.acquire()
	return &snapshot{tx: tx, file: e.cur, log: e.log}, nil
}

// WriteTo writes the whole database file as of the snapshot, framed so that
// Restore can tell a complete, intact stream from a damaged one: a magic
// header with the file's length, the file, then its SHA-256. After a Restore
// renamed another file over this one, bbolt's Tx.WriteTo still reads this
// one: without Tx.WriteFlag it copies from the descriptor it holds, not from
// the path.
func (s *snapshot) WriteTo(w io.Writer) (int64, error) {
	size := s.tx.Size()
	var head [len(snapshotMagic) + 8]byte
	copy(head[:], snapshotMagic)
	binary.BigEndian.PutUint64(head[len(snapshotMagic):], uint64(size))
	written, err := w.Write(head[:])
	total := int64(written)
	if err != nil {
		return total, fmt.Errorf("boltdb: snapshot: %w", err)
	}
	h := sha256.New()
	n, err := s.tx.WriteTo(io.MultiWriter(w, h))
	total += n
	if err != nil {
		return total, fmt.Errorf("boltdb: snapshot: %w", err)
	}
	if n != size {
		return total, fmt.Errorf("boltdb: snapshot: wrote %d bytes of %d", n, size)
	}
	written, err = w.Write(h.Sum(nil))
	total += int64(written)
	if err != nil {
		return total, fmt.Errorf("boltdb: snapshot: %w", err)
	}
	return total, nil
}

// Release ends the read transaction. If a Restore replaced the file, or
// Close closed the engine, meanwhile and this was the file's last snapshot,
// it closes the file.
func (s *snapshot) Release() {
	s.once.Do(func() {
		_ = s.tx.Rollback()
		if err := s.file.release(); err != nil {
			s.log.Warn("boltdb: close the file after its last snapshot", "err", err)
		}
	})
}

// Hash is a SHA-256 over every key in byte order with its value bytes as
// stored, its timeout and its deadline. The applied index and anything else
// node-specific are left out.
func (e *Engine) Hash() ([]byte, error) {
	h := sha256.New()
	err := e.view(false, func(b buckets) error {
		var buf [binary.MaxVarintLen64]byte
		field := func(p []byte) {
			h.Write(buf[:binary.PutUvarint(buf[:], uint64(len(p)))])
			h.Write(p)
		}
		return b.vals.ForEach(func(k, v []byte) error {
			var deadline int64
			var timeout string
			if t := b.ttl.Get(k); t != nil {
				var err error
				if deadline, timeout, err = decodeTTL(t); err != nil {
					return fmt.Errorf("key %q: %w", k, err)
				}
			}
			field(k)
			field(v)
			field([]byte(timeout))
			var d [8]byte
			binary.BigEndian.PutUint64(d[:], uint64(deadline))
			h.Write(d[:])
			return nil
		})
	})
	if err != nil {
		if errors.Is(err, drivers.ErrClosed) {
			return nil, err
		}
		return nil, fmt.Errorf("boltdb: %s: hash: %w", e.cfg.File, err)
	}
	return h.Sum(nil), nil
}
