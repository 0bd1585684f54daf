package boltdb

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kvnode/kvnode/drivers"
)

var _ drivers.Engine = (*Engine)(nil)

// initialMmapSize is mapped up front so that the file can grow to this size
// without a remap. A remap must wait for every open read transaction, so
// without it a long Snapshot.WriteTo could stall writes. It costs address
// space only, not memory.
const initialMmapSize = 1 << 30

var appliedIndexKey = []byte("applied_index")

// Engine is a drivers.Engine stored in one bbolt file. It is safe for
// concurrent use.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	bucket []byte
	// noSync skips bbolt's fsyncs (WithoutSync).
	noSync bool

	// wmu serialises Apply, Restore and Close, so that the cached applied
	// index and counters move in commit order.
	wmu sync.Mutex
	// mu guards cur: readers and Apply hold it shared for their whole
	// transaction, Restore and Close exclusively while they replace it.
	mu sync.RWMutex
	// cur is the file served; nil once closed.
	cur *handle

	applied atomic.Uint64
	keys    atomic.Int64
	bytes   atomic.Int64
}

// Option changes how Open opens a file.
type Option func(*Engine)

// WithoutSync commits without fsync, for an engine whose writes are made
// durable elsewhere: a cluster node's raft log, from which the file is
// rebuilt when it cannot be trusted. A process crash loses nothing (the
// kernel's page cache has every committed page); an OS crash or power loss
// can leave the file torn, so whoever opens it after one must not (see
// cluster.CheckEngineFiles). Close syncs the file, so a clean stop leaves
// it whole.
func WithoutSync() Option { return func(e *Engine) { e.noSync = true } }

// Open opens (or creates) the database file named by cfg, creating the
// buckets it needs. Defaults are applied to unset fields. A file held by
// another process makes Open fail after cfg.LockTimeout instead of hanging.
func Open(cfg Config, logger *slog.Logger, opts ...Option) (*Engine, error) {
	cfg.InitDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, log: logger.With("file", cfg.File), bucket: []byte(cfg.Bucket)}
	for _, o := range opts {
		o(e)
	}
	if err := finishRestore(cfg.File); err != nil {
		return nil, err
	}
	db, err := e.openFile(cfg.File, false)
	if err != nil {
		return nil, err
	}
	cleanRestore(cfg.File)
	c, err := e.load(db)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	e.publish(c)
	e.cur = newHandle(db)
	e.log.Debug("boltdb opened", "keys", e.keys.Load(), "applied_index", e.applied.Load())
	return e, nil
}

// openFile opens path with bbolt, turning bbolt's failure modes into errors
// that name the file. An existing file is first opened read-only to check
// that it is whole: opening it for writing makes bbolt read every page to
// rebuild the freelist. readOnly is used to inspect a restore candidate.
func (e *Engine) openFile(path string, readOnly bool) (*bolt.DB, error) {
	if info, err := os.Stat(path); !readOnly && err == nil && info.Size() > 0 {
		db, err := e.openBolt(path, true)
		if err != nil {
			return nil, err
		}
		if err := db.Close(); err != nil {
			return nil, fmt.Errorf("boltdb: open %q: %w", path, err)
		}
	}
	return e.openBolt(path, readOnly)
}

func (e *Engine) openBolt(path string, readOnly bool) (db *bolt.DB, err error) {
	var f *os.File
	opts := &bolt.Options{
		Timeout:         e.cfg.LockTimeout,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: initialMmapSize,
		ReadOnly:        readOnly,
		NoSync:          e.noSync && !readOnly,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			file, err := os.OpenFile(name, flag, perm)
			f = file
			return file, err
		},
	}
	// A damaged file can make bbolt fault reading its mapping or fail an
	// assertion while it rebuilds the freelist; both become errors here.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if f != nil {
				_ = f.Close()
			}
			db, err = nil, fmt.Errorf("boltdb: open %q: %w: %v", path, ErrNotBolt, r)
		}
	}()
	db, err = bolt.Open(path, e.cfg.Permissions.Perm(), opts)
	switch {
	case err == nil:
		if err := checkSize(db); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("boltdb: open %q: %w: %w", path, ErrNotBolt, err)
		}
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("boltdb: open %q: %w (waited %s)", path, ErrLocked, e.cfg.LockTimeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch),
		errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("boltdb: open %q: %w: %w", path, ErrNotBolt, err)
	default:
		return nil, fmt.Errorf("boltdb: open %q: %w", path, err)
	}
}

// checkSize refuses a file shorter than its own meta page says (a truncated
// copy): reading its missing pages would crash the process.
func checkSize(db *bolt.DB) error {
	info, err := os.Stat(db.Path())
	if err != nil {
		return err
	}
	return db.View(func(tx *bolt.Tx) error {
		if tx.Size() > info.Size() {
			return fmt.Errorf("truncated: %d of %d bytes", info.Size(), tx.Size())
		}
		return nil
	})
}

// contents is what load reads from a file for AppliedIndex and Stats.
type contents struct {
	applied     uint64
	keys, bytes int64
}

// load creates missing buckets and reads the applied index and counters.
func (e *Engine) load(db *bolt.DB) (contents, error) {
	if !db.IsReadOnly() {
		err := db.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{e.bucket, []byte(ttlBucket), []byte(expiryBucket), []byte(metaBucket)} {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return fmt.Errorf("create bucket %q: %w", name, err)
				}
			}
			n, err := e.buckets(tx).dropOrphans()
			if n > 0 {
				e.log.Warn("boltdb: dropped expiry records of keys removed outside kvnode", "records", n)
			}
			return err
		})
		if err != nil {
			return contents{}, fmt.Errorf("boltdb: %s: %w", db.Path(), err)
		}
	}
	var c contents
	err := db.View(func(tx *bolt.Tx) error {
		b := e.buckets(tx)
		if err := b.check(); err != nil {
			return err
		}
		if raw := b.meta.Get(appliedIndexKey); raw != nil {
			if len(raw) != 8 {
				return fmt.Errorf("%w: applied index of %d bytes", ErrCorrupt, len(raw))
			}
			c.applied = decodeUint64(raw)
		}
		return b.vals.ForEach(func(k, v []byte) error {
			c.keys++
			c.bytes += int64(len(k) + valueLen(v))
			return nil
		})
	})
	if err != nil {
		return contents{}, fmt.Errorf("boltdb: %s: %w", db.Path(), err)
	}
	return c, nil
}

// publish makes c what AppliedIndex and Stats report. The caller holds wmu
// (or is Open), so that Apply cannot move the counters meanwhile.
func (e *Engine) publish(c contents) {
	e.applied.Store(c.applied)
	e.keys.Store(c.keys)
	e.bytes.Store(c.bytes)
}

// buckets groups the four buckets of one transaction.
type buckets struct {
	vals, ttl, exp, meta *bolt.Bucket
}

func (e *Engine) buckets(tx *bolt.Tx) buckets {
	return buckets{
		vals: tx.Bucket(e.bucket),
		ttl:  tx.Bucket([]byte(ttlBucket)),
		exp:  tx.Bucket([]byte(expiryBucket)),
		meta: tx.Bucket([]byte(metaBucket)),
	}
}

func (b buckets) check() error {
	if b.vals == nil || b.ttl == nil || b.exp == nil || b.meta == nil {
		return fmt.Errorf("%w: missing bucket", ErrCorrupt)
	}
	return nil
}

// view runs fn in a read transaction of the current file. Only the values
// and ttl buckets are opened unless withExpiry: each opened bucket costs
// allocations on every read.
func (e *Engine) view(withExpiry bool, fn func(b buckets) error) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.cur == nil {
		return drivers.ErrClosed
	}
	return e.cur.db.View(func(tx *bolt.Tx) error {
		b := buckets{vals: tx.Bucket(e.bucket), ttl: tx.Bucket([]byte(ttlBucket))}
		if b.vals == nil || b.ttl == nil {
			return fmt.Errorf("%w: missing bucket", ErrCorrupt)
		}
		if withExpiry {
			if b.exp = tx.Bucket([]byte(expiryBucket)); b.exp == nil {
				return fmt.Errorf("%w: missing bucket %s", ErrCorrupt, expiryBucket)
			}
		}
		return fn(b)
	})
}

// live returns the ttl record of key when key exists and is not expired at
// now; ok is false otherwise. deadline is 0 for a key without expiry.
func (b buckets) live(key []byte, now int64) (raw []byte, deadline int64, timeout string, ok bool, err error) {
	raw = b.vals.Get(key)
	if raw == nil {
		return nil, 0, "", false, nil
	}
	if t := b.ttl.Get(key); t != nil {
		deadline, timeout, err = decodeTTL(t)
		if err != nil {
			return nil, 0, "", false, fmt.Errorf("key %q: %w", key, err)
		}
		if drivers.Expired(deadline, now) {
			return nil, 0, "", false, nil
		}
	}
	return raw, deadline, timeout, true, nil
}

// Has returns the keys that exist and are not expired at now.
func (e *Engine) Has(now int64, keys []string) ([]string, error) {
	var out []string
	err := e.view(false, func(b buckets) error {
		for _, k := range unique(keys) {
			_, _, _, ok, err := b.live([]byte(k), now)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, k)
			}
		}
		return nil
	})
	if err != nil {
		return nil, e.readErr("has", err)
	}
	return out, nil
}

// MGet returns Key and Value of the keys that exist and are not expired.
func (e *Engine) MGet(now int64, keys []string) ([]drivers.Item, error) {
	var out []drivers.Item
	err := e.view(false, func(b buckets) error {
		for _, k := range unique(keys) {
			raw, _, _, ok, err := b.live([]byte(k), now)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			v, err := decodeValue(raw)
			if err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
			out = append(out, drivers.Item{Key: k, Value: v})
		}
		return nil
	})
	if err != nil {
		return nil, e.readErr("mget", err)
	}
	return out, nil
}

// TTL returns Key, Timeout ("" for no expiry) and Deadline of the keys that
// exist and are not expired.
func (e *Engine) TTL(now int64, keys []string) ([]drivers.Item, error) {
	var out []drivers.Item
	err := e.view(false, func(b buckets) error {
		for _, k := range unique(keys) {
			_, deadline, timeout, ok, err := b.live([]byte(k), now)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, drivers.Item{Key: k, Timeout: timeout, Deadline: deadline})
			}
		}
		return nil
	})
	if err != nil {
		return nil, e.readErr("ttl", err)
	}
	return out, nil
}

func (e *Engine) readErr(op string, err error) error {
	if errors.Is(err, drivers.ErrClosed) {
		return err
	}
	return fmt.Errorf("boltdb: %s: %s: %w", e.cfg.File, op, err)
}

// AppliedIndex is the index stored by the last successful Apply.
func (e *Engine) AppliedIndex() uint64 { return e.applied.Load() }

// Stats reports the number of keys (expired but unswept included) and the
// bytes of their keys and values (values decoded).
func (e *Engine) Stats() drivers.Stats {
	return drivers.Stats{Keys: e.keys.Load(), Bytes: e.bytes.Load()}
}

// Close stops the engine: every later call returns drivers.ErrClosed. It
// waits for reads and Apply in progress, not for unreleased Snapshots: a
// Snapshot stays readable, and the file (and its lock) is closed by the
// last Release.
func (e *Engine) Close() error {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil {
		return drivers.ErrClosed
	}
	h := e.cur
	e.cur = nil
	if err := h.release(); err != nil {
		return fmt.Errorf("boltdb: close %q: %w", e.cfg.File, err)
	}
	return nil
}

// Sync implements drivers.Syncer: the file's committed pages reach the
// disk (a no-op cost for a file opened with sync, whose commits did).
func (e *Engine) Sync() error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.cur == nil {
		return drivers.ErrClosed
	}
	if err := e.cur.db.Sync(); err != nil {
		return fmt.Errorf("boltdb: sync %q: %w", e.cfg.File, err)
	}
	return nil
}

// unique drops repeated keys, keeping the first occurrence, because a key
// asked for twice is answered once.
func unique(keys []string) []string {
	if len(keys) < 2 {
		return keys
	}
	seen := make(map[string]struct{}, len(keys))
	out := keys[:0:0]
	for _, k := range keys {
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, k)
	}
	return out
}
