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
// The stream is written to a temporary file next to the database, checked
// (length and checksum intact, the file opens, kvnode's buckets are there and
// every record in them reads back well-formed) and opened; then it is renamed
// over the live file and served. On any error the old state is kept.
//
// The rename is atomic, so a crash leaves either the old or the new file,
// each complete and holding its own applied index. Restore does not wait
// for Snapshots of the old file, which raft may hold while it waits for this
// very Restore: they go on reading the old file through its open descriptor
// (an unlinked file lives until its last descriptor is closed), and the last
// Release closes it. Reads and Apply wait only for the rename.
func (e *Engine) Restore(r io.Reader) error {
	tmp, err := e.receive(r)
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp) }() // no-op once renamed into place

	if err := e.verify(tmp); err != nil {
		return err
	}
	db, c, err := e.openCandidate(tmp)
	if err != nil {
		return err
	}
	old, err := e.swap(tmp, db, c)
	if err != nil {
		_ = db.Close()
		return err
	}
	if err := old.release(); err != nil {
		e.log.Warn("boltdb: close the replaced file", "err", err)
	}
	if err := syncDir(filepath.Dir(e.cfg.File)); err != nil {
		e.log.Warn("boltdb: restore: sync directory: a crash may bring back the replaced file", "err", err)
	}
	e.log.Info("boltdb restored", "keys", c.keys, "applied_index", c.applied)
	return nil
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
	// restorePrevSuffix is where earlier versions moved the live file before
	// moving the new one in; Open still puts back one a crash left there.
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

// openCandidate opens the verified file for writing and reads what
// AppliedIndex and Stats will report. No lock is needed: the file is
// nobody else's yet. bbolt keeps the name it was opened by only for its
// logs, so the rename that follows does not disturb it.
func (e *Engine) openCandidate(path string) (*bolt.DB, contents, error) {
	db, err := e.openBolt(path, false)
	if err != nil {
		return nil, contents{}, fmt.Errorf("boltdb: %s: restore: %w", e.cfg.File, err)
	}
	c, err := e.load(db)
	if err != nil {
		_ = db.Close()
		return nil, contents{}, fmt.Errorf("boltdb: %s: restore: %w", e.cfg.File, err)
	}
	return db, c, nil
}

// swap renames the opened candidate over the live file and serves it,
// returning the replaced file for the caller to release. Reads in progress
// finish on the old file first; later ones find the new one.
func (e *Engine) swap(tmp string, db *bolt.DB, c contents) (*handle, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil {
		return nil, drivers.ErrClosed
	}
	if err := os.Rename(tmp, e.cfg.File); err != nil {
		return nil, fmt.Errorf("boltdb: %s: restore: %w", e.cfg.File, err)
	}
	old := e.cur
	e.cur = newHandle(db)
	e.publish(c)
	return old, nil
}

// finishRestore puts back the live file when a crash interrupted a Restore
// of an earlier version between its two renames (the live file moved to
// <file>.restore-prev, the candidate not yet moved in). It runs before Open
// takes the file lock, because there is no file to lock yet.
func finishRestore(path string) error {
	prev := path + restorePrevSuffix
	if _, err := os.Stat(prev); err != nil {
		// Only a missing file means there is nothing to put back: on any
		// other error Open would create an empty file at path, and
		// cleanRestore would then delete the live file set aside at prev.
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("boltdb: %s: look for an interrupted restore: %w", path, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		if err != nil {
			return fmt.Errorf("boltdb: %s: look for an interrupted restore: %w", path, err)
		}
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

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
