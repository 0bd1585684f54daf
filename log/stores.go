package log

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
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

	bolt  *raftboltdb.BoltStore
	cache *sizedCache
}

// AvgEntryBytes is the moving average size of the log entries this node
// stored lately (0 before the first).
func (s *Stores) AvgEntryBytes() int64 { return s.cache.AvgEntryBytes() }

// StoreOption adjusts how OpenStores opens the raft log.
type StoreOption func(*raftboltdb.Options)

// WithNoSync skips the fsync after each log write. Entries acknowledged by
// a majority then survive process crashes (they sit in the page cache) but
// not a power loss that takes down a majority at once: a trade for caches
// whose writes cost several fsyncs across the cluster.
func WithNoSync() StoreOption { return func(o *raftboltdb.Options) { o.NoSync = true } }

// OpenStores opens (creating them if needed) the stores kept under dir.
// logger receives the snapshot store's messages; nil discards them.
func OpenStores(dir string, logger *slog.Logger, opts ...StoreOption) (*Stores, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("raft stores: %w", err)
	}
	path := filepath.Join(dir, "raft.db")
	o := raftboltdb.Options{
		Path: path,
		// The freelist is rebuilt at open instead of written with every
		// commit: the log appends and truncates constantly.
		BoltOptions: &bolt.Options{Timeout: lockTimeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType},
	}
	for _, opt := range opts {
		opt(&o)
	}
	b, err := raftboltdb.New(o)
	if err != nil {
		return nil, fmt.Errorf("raft stores: open %s: %w", path, err)
	}
	cache := newSizedCache(b, logCacheSize, logCacheBytes)
	w := &slogWriter{log: logger.With("component", "raft-snapshots")}
	snaps, err := raft.NewFileSnapshotStore(dir, snapshotsRetained, w)
	if err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("raft stores: snapshots in %s: %w", dir, err)
	}
	return &Stores{Log: cache, Stable: b, Snapshots: snaps, bolt: b, cache: cache}, nil
}

// StateFiles names the files and directories OpenStores keeps in dir: the
// raft log and stable store, and the snapshots.
func StateFiles(dir string) []string {
	return []string{filepath.Join(dir, "raft.db"), filepath.Join(dir, "snapshots")}
}

// Close closes raft.db; closing twice is harmless. Call it after raft has
// shut down.
func (s *Stores) Close() error {
	if err := s.bolt.Close(); err != nil {
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
