package boltdb

import (
	"errors"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// handle is an open database file, shared by the engine while the file is
// current and by every unreleased Snapshot of it. Restore replaces the
// engine's file without waiting for those snapshots (raft holds one while it
// waits for the Restore to finish), so whoever drops the last reference
// closes the file: Engine.Close, the swap in Restore, or Snapshot.Release.
//
// Reads take no reference: they hold Engine.mu shared for their whole
// transaction, and the engine drops its reference only after replacing or
// clearing Engine.cur under Engine.mu held exclusively.
type handle struct {
	db   *bolt.DB
	refs atomic.Int64
}

// newHandle returns db with one reference: the engine's.
func newHandle(db *bolt.DB) *handle {
	h := &handle{db: db}
	h.refs.Store(1)
	return h
}

// acquire adds a reference. The caller holds Engine.mu and found h in
// Engine.cur, so the engine's reference keeps the count above zero.
func (h *handle) acquire() { h.refs.Add(1) }

// release drops a reference and closes the file with the last one. bbolt's
// Close waits for open read transactions, so a Snapshot rolls its own back
// before it releases. A file committed without fsync (WithoutSync) is
// synced first: what a clean stop leaves is whole.
func (h *handle) release() error {
	if h.refs.Add(-1) > 0 {
		return nil
	}
	var err error
	if h.db.NoSync && !h.db.IsReadOnly() {
		err = h.db.Sync()
	}
	return errors.Join(err, h.db.Close())
}
