package boltdb

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"

	"github.com/kvnode/kvnode/drivers"
)

// Restore replaces the database with a stream written by Snapshot.WriteTo.
// The stream is written to a temporary file next to the database and checked
// (length and checksum intact, the file opens, kvnode's buckets are there and
// every record in them reads back well-formed) before the current file is
// closed and replaced; on any error the old state is kept.
// Reads wait while the files are swapped.
func (e *Engine) Restore(r io.Reader) error {
	tmp, err := e.receive(r)
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp) }() // no-op once renamed into place

	if err := e.verify(tmp); err != nil {
		return err
	}

	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.db == nil {
		return drivers.ErrClosed
	}
	return e.swap(tmp)
}

// receive copies the stream to a new file in the database's directory, so
// that the final rename stays on one file system.
func (e *Engine) receive(r io.Reader) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(e.cfg.File), filepath.Base(e.cfg.File)+restoreTempSuffix+"*")
	if err != nil {
		return "", fmt.Errorf("boltdb: %s: restore: %w", e.cfg.File, err)
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		_ = f.Close()
		_ = os.Remove(name)
		return "", fmt.Errorf("boltdb: %s: restore: %w", e.cfg.File, err)
	}
	if err := readFramed(f, r); err != nil {
		return fail(err)
	}
	if err := f.Chmod(e.cfg.Permissions.Perm()); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("boltdb: %s: restore: %w", e.cfg.File, err)
	}
	return name, nil
}

// readFramed copies the bolt file out of a stream written by
// snapshot.WriteTo, checking its header, length and checksum.
func readFramed(dst io.Writer, r io.Reader) error {
	var head [len(snapshotMagic) + 8]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: stream too short for a header", ErrBadSnapshot)
		}
		return fmt.Errorf("read snapshot stream: %w", err)
	}
	if string(head[:len(snapshotMagic)]) != snapshotMagic {
		return fmt.Errorf("%w: not a kvnode boltdb snapshot (bad magic)", ErrBadSnapshot)
	}
	size := int64(binary.BigEndian.Uint64(head[len(snapshotMagic):]))
	if size <= 0 || size > maxSnapshotSize {
		return fmt.Errorf("%w: implausible database size %d", ErrBadSnapshot, size)
	}
	h := sha256.New()
	n, err := io.CopyN(io.MultiWriter(dst, h), r, size)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: truncated after %d of %d bytes", ErrBadSnapshot, n, size)
		}
		return fmt.Errorf("read snapshot stream: %w", err)
	}
	var sum [sha256.Size]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated checksum", ErrBadSnapshot)
		}
		return fmt.Errorf("read snapshot stream: %w", err)
	}
	if !bytes.Equal(sum[:], h.Sum(nil)) {
		return fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
	}
	return nil
}

// Names of the files Restore works with, next to the database.
const (
	restoreTempSuffix = ".restore-new-"
	restorePrevSuffix = ".restore-prev"
)

// maxSnapshotSize bounds the length a header may claim (bbolt's own limit on
// 64-bit platforms is 256 TiB).
const maxSnapshotSize = 1 << 48

// verify opens the candidate read-only and reads every record of kvnode's
// buckets, checking order and format. It does this itself rather than with
// bbolt's Tx.Check, which panics in a goroutine of its own (uncatchable) on a
// damaged page. A damaged file can also make bbolt read past the end of its
// mapping; SetPanicOnFault turns that into a panic this goroutine recovers
// from, instead of a crash.
func (e *Engine) verify(path string) (err error) {
	wrap := func(err error) error {
		return fmt.Errorf("boltdb: %s: restore: %w: %w", e.cfg.File, ErrBadSnapshot, err)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = wrap(fmt.Errorf("damaged file: %v", r))
		}
	}()
	info, err := os.Stat(path)
	if err != nil {
		return wrap(err)
	}
	db, err := e.openFile(path, true)
	if err != nil {
		return wrap(err)
	}
	defer func() { _ = db.Close() }()
	return db.View(func(tx *bolt.Tx) error {
		if tx.Size() > info.Size() {
			return wrap(fmt.Errorf("truncated: %d of %d bytes", info.Size(), tx.Size()))
		}
		b := e.buckets(tx)
		if err := b.check(); err != nil {
			return wrap(err)
		}
		if err := b.walk(); err != nil {
			return wrap(err)
		}
		return nil
	})
}

// walk reads every record, so that every page is visited (bbolt asserts each
// page's identity as it loads it), and checks the records' shape.
func (b buckets) walk() error {
	var prev []byte
	ordered := func(name string, k []byte) error {
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			return fmt.Errorf("%w: bucket %s: keys out of order", ErrCorrupt, name)
		}
		prev = append(prev[:0], k...)
		return nil
	}
	err := b.vals.ForEach(func(k, v []byte) error {
		if v == nil {
			return nil // a nested bucket: never served, harmless
		}
		if _, ok := decodeValueFastNoCopy(v); !ok {
			if _, err := decodeValue(v); err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
		}
		return ordered("values", k)
	})
	if err != nil {
		return err
	}
	prev = nil
	err = b.ttl.ForEach(func(k, v []byte) error {
		deadline, _, err := decodeTTL(v)
		if err != nil {
			return fmt.Errorf("ttl of %q: %w", k, err)
		}
		if b.exp.Get(expiryKey(deadline, k)) == nil {
			return fmt.Errorf("%w: ttl of %q has no expiry index entry", ErrCorrupt, k)
		}
		return ordered(ttlBucket, k)
	})
	if err != nil {
		return err
	}
	prev = nil
	err = b.exp.ForEach(func(k, _ []byte) error {
		if len(k) <= 8 {
			return fmt.Errorf("%w: expiry index key of %d bytes", ErrCorrupt, len(k))
		}
		return ordered(expiryBucket, k)
	})
	if err != nil {
		return err
	}
	if raw := b.meta.Get(appliedIndexKey); raw != nil && len(raw) != 8 {
		return fmt.Errorf("%w: applied index of %d bytes", ErrCorrupt, len(raw))
	}
	return nil
}

// swap closes the current file, moves the verified candidate into its place
// and opens it. If the new file cannot be opened the old one is put back.
// The caller holds e.mu exclusively.
func (e *Engine) swap(tmp string) error {
	path := e.cfg.File
	prev := path + restorePrevSuffix
	if err := e.db.Close(); err != nil {
		e.log.Warn("boltdb: close before restore", "err", err)
	}
	e.db = nil
	reopenOld := func(cause error) error {
		db, err := e.openFile(path, false)
		if err == nil {
			err = e.load(db)
		}
		if err != nil {
			return fmt.Errorf("boltdb: %s: restore: %w; reopening the old file also failed: %w", path, cause, err)
		}
		e.db = db
		return fmt.Errorf("boltdb: %s: restore: %w", path, cause)
	}
	if err := os.Rename(path, prev); err != nil {
		return reopenOld(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		if rerr := os.Rename(prev, path); rerr != nil {
			return fmt.Errorf("boltdb: %s: restore: %w; putting the old file back also failed: %w", path, err, rerr)
		}
		return reopenOld(err)
	}
	db, err := e.openFile(path, false)
	if err == nil {
		if err = e.load(db); err != nil {
			_ = db.Close()
		}
	}
	if err != nil {
		if rerr := os.Rename(prev, path); rerr != nil {
			return fmt.Errorf("boltdb: %s: restore: %w; putting the old file back also failed: %w", path, err, rerr)
		}
		return reopenOld(err)
	}
	e.db = db
	if err := os.Remove(prev); err != nil {
		e.log.Warn("boltdb: remove previous file after restore", "file", prev, "err", err)
	}
	syncDir(filepath.Dir(path))
	e.log.Info("boltdb restored", "keys", e.keys.Load(), "applied_index", e.applied.Load())
	return nil
}

// finishRestore puts back the live file when a crash interrupted Restore
// between its two renames (the live file moved to <file>.restore-prev, the
// candidate not yet moved in). It runs before Open takes the file lock,
// because there is no file to lock yet.
func finishRestore(path string) error {
	prev := path + restorePrevSuffix
	if _, err := os.Stat(prev); err != nil {
		return nil
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := os.Rename(prev, path); err != nil {
		return fmt.Errorf("boltdb: %s: put back the file of an interrupted restore: %w", path, err)
	}
	return nil
}

// cleanRestore removes what an interrupted Restore left: the file a
// completed swap replaced, and candidates never swapped in. It runs once Open
// holds the file lock, so no other process can be restoring this file.
func cleanRestore(path string) {
	leftovers, _ := filepath.Glob(path + restoreTempSuffix + "*")
	leftovers = append(leftovers, path+restorePrevSuffix)
	for _, f := range leftovers {
		_ = os.Remove(f)
	}
}

// syncDir makes the renames durable; failure only weakens crash safety.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
