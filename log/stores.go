package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	bolt "go.etcd.io/bbolt"

	"github.com/kvnode/kvnode/internal/failpoint"
)

const (
	// logCacheSize and logCacheBytes bound the recent entries kept in
	// memory, so that replicating to followers that are only slightly
	// behind, and applying on a follower, does not read the file.
	logCacheSize  = 512
	logCacheBytes = 16 << 20
	// snapshotsRetained is how many snapshots stay on disk: the newest, and
	// one to fall back on if it turns out to be unreadable.
	snapshotsRetained = 2
	// lockTimeout bounds the wait for raft.db held by another process, so a
	// second node started on the same directory fails instead of hanging.
	lockTimeout = 5 * time.Second
)

// Stores are the durable parts of a raft node, all under one directory:
// the log and stable store in dir/raft.db and snapshots in dir/snapshots.
type Stores struct {
	// Log is the raft log (cached in memory for recent entries).
	Log raft.LogStore
	// Stable holds raft's term and vote.
	Stable raft.StableStore
	// Snapshots holds FSM snapshots.
	Snapshots raft.SnapshotStore

	closer io.Closer
	cache  *sizedCache
}

// AvgEntryBytes is the moving average size of the log entries this node
// stored lately (0 before the first).
func (s *Stores) AvgEntryBytes() int64 { return s.cache.AvgEntryBytes() }

// StoreOption adjusts how OpenStores opens the raft log.
type StoreOption func(*storeOptions)

type storeOptions struct {
	noSync bool
	wal    bool
}

// WithNoSync skips the fsync after each log write. Entries acknowledged by
// a majority then survive process crashes (they sit in the page cache) but
// not a power loss that takes down a majority at once: a trade for caches
// whose writes cost several fsyncs across the cluster. boltdb log only.
func WithNoSync() StoreOption { return func(o *storeOptions) { o.noSync = true } }

// WithWAL keeps the raft log and stable store in hashicorp/raft-wal (in
// dir/wal) instead of raft.db: one fsync per append where bbolt needs two.
// A data dir written by the other store is migrated at open (migrate.go).
func WithWAL() StoreOption { return func(o *storeOptions) { o.wal = true } }

// OpenStores opens (creating them if needed) the stores kept under dir.
// logger receives the snapshot store's messages; nil discards them.
func OpenStores(dir string, logger *slog.Logger, opts ...StoreOption) (*Stores, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("raft stores: %w", err)
	}
	var o storeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.wal && o.noSync {
		return nil, fmt.Errorf("raft stores: %w: no_sync applies to the boltdb log store only", ErrStoreConfig)
	}
	if err := migrate(dir, o.wal, logger); err != nil {
		return nil, fmt.Errorf("raft stores: %w", err)
	}
	st := &Stores{}
	var logStore raft.LogStore
	if o.wal {
		w, err := openWALDir(filepath.Join(dir, walDir))
		if err != nil {
			return nil, fmt.Errorf("raft stores: %w", err)
		}
		st.closer, logStore, st.Stable = w, w, w
	} else {
		b, err := openBoltFile(filepath.Join(dir, boltFile), o.noSync)
		if err != nil {
			return nil, fmt.Errorf("raft stores: %w", err)
		}
		st.closer, logStore, st.Stable = b, b, b
	}
	// The cache passes IsMonotonic on: raft must see that raft-wal is.
	st.cache = newSizedCache(logStore, logCacheSize, logCacheBytes)
	logStore = st.cache
	w := &slogWriter{log: logger.With("component", "raft-snapshots")}
	snaps, err := raft.NewFileSnapshotStore(dir, snapshotsRetained, w)
	if err != nil {
		_ = st.closer.Close()
		return nil, fmt.Errorf("raft stores: snapshots in %s: %w", dir, err)
	}
	st.Snapshots = snaps
	if failpoint.Enabled {
		logStore = slowLog{logStore}
	}
	st.Log = logStore
	return st, nil
}

func openBoltFile(path string, noSync bool) (*raftboltdb.BoltStore, error) {
	b, err := raftboltdb.New(raftboltdb.Options{
		Path: path,
		// The freelist is rebuilt at open instead of written with every
		// commit: the log appends and truncates constantly.
		BoltOptions: &bolt.Options{Timeout: lockTimeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType},
		NoSync:      noSync,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return b, nil
}

func openWALDir(path string) (*walStore, error) {
	if err := os.MkdirAll(path, 0o750); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(path, wal.WithMetaStore(meta))
	if err != nil {
		_ = meta.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &walStore{WAL: w, meta: meta}, nil
}

// walStore is a raft-wal WAL that closes its metadata database too: the
// WAL's Close (v0.4.1) leaves it open, with its file lock, so opening the
// same WAL again in this process (a restart in tests, a migration) would
// wait for the lock forever.
type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

func (w *walStore) Close() error {
	return errors.Join(w.WAL.Close(), w.meta.Close())
}

// slowLog delays every write to the raft log as the raft-store-logs
// failpoint says: a slow disk, in failpoint builds only.
type slowLog struct{ raft.LogStore }

func (s slowLog) StoreLog(l *raft.Log) error {
	failpoint.Sleep(failpoint.RaftStoreLogs)
	return s.LogStore.StoreLog(l) // the store's own error
}

func (s slowLog) StoreLogs(ls []*raft.Log) error {
	failpoint.Sleep(failpoint.RaftStoreLogs)
	return s.LogStore.StoreLogs(ls) // the store's own error
}

// IsMonotonic passes on the wrapped store's answer: raft type-asserts
// raft.MonotonicLogStore, which embedding the interface would hide.
func (s slowLog) IsMonotonic() bool {
	m, ok := s.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// StateFiles names the files and directories OpenStores keeps in dir: the
// raft log and stable store (either store's), and the snapshots.
func StateFiles(dir string) []string {
	return []string{filepath.Join(dir, boltFile), filepath.Join(dir, walDir), filepath.Join(dir, "snapshots")}
}

// Where each log store keeps its files in the data dir.
const (
	boltFile = "raft.db"
	walDir   = "wal"
)

// Close closes raft.db; closing twice is harmless. Call it after raft has
// shut down.
func (s *Stores) Close() error {
	if err := s.closer.Close(); err != nil {
		return fmt.Errorf("raft stores: close: %w", err)
	}
	return nil
}

// slogWriter turns the lines an hclog logger writes ("<time> [LEVEL] name:
// message") into slog records at the matching level, for raft components
// that only accept an io.Writer.
type slogWriter struct{ log *slog.Logger }

var levels = []struct {
	tag   []byte
	level slog.Level
}{
	{[]byte("[ERROR]"), slog.LevelError},
	{[]byte("[WARN]"), slog.LevelWarn},
	{[]byte("[INFO]"), slog.LevelInfo},
	{[]byte("[DEBUG]"), slog.LevelDebug},
	{[]byte("[TRACE]"), slog.LevelDebug},
}

func (w *slogWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		level, msg := slog.LevelInfo, line
		for _, l := range levels {
			if i := bytes.Index(line, l.tag); i >= 0 {
				level, msg = l.level, bytes.TrimSpace(line[i+len(l.tag):])
				break
			}
		}
		w.log.Log(context.Background(), level, string(msg))
	}
	return len(p), nil
}
