package boltdb

import (
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
// (it opens, every page is consistent, the buckets are there) before the
// current file is closed and replaced; on any error the old state is kept.
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
	f, err := os.CreateTemp(filepath.Dir(e.cfg.File), filepath.Base(e.cfg.File)+".restore-*")
	if err != nil {
		return "", fmt.Errorf("boltdb: %s: restore: %w", e.cfg.File, err)
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		_ = f.Close()
		_ = os.Remove(name)
		return "", fmt.Errorf("boltdb: %s: restore: %w", e.cfg.File, err)
	}
	n, err := io.Copy(f, r)
	if err != nil {
		return fail(fmt.Errorf("read snapshot stream: %w", err))
	}
	if n == 0 {
		return fail(fmt.Errorf("%w: empty stream", ErrBadSnapshot))
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

// verify opens the candidate read-only and checks it whole. A damaged file
// can make bbolt read past the end of its mapping; SetPanicOnFault turns that
// into a panic this goroutine recovers from, instead of a crash.
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
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return wrap(err)
		}
		if err := e.buckets(tx).check(); err != nil {
			return wrap(err)
		}
		if raw := tx.Bucket([]byte(metaBucket)).Get(appliedIndexKey); raw != nil && len(raw) != 8 {
			return wrap(fmt.Errorf("%w: applied index of %d bytes", ErrCorrupt, len(raw)))
		}
		return nil
	})
}

// swap closes the current file, moves the verified candidate into its place
// and opens it. If the new file cannot be opened the old one is put back.
// The caller holds e.mu exclusively.
func (e *Engine) swap(tmp string) error {
	path := e.cfg.File
	prev := path + ".restore-prev"
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

// syncDir makes the renames durable; failure only weakens crash safety.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
