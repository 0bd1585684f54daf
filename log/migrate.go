package log

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// migrate moves the raft log and stable store of dir to the store OpenStores
// is asked for (raft-wal when toWAL, else raft-boltdb), so a node can switch
// cluster.raft.log_store and keep its state. The new store is written in a
// temporary place and renamed into its own only once complete; the old one
// is then renamed aside (<name>.migrated-<time>, which the operator may
// delete). A crash at any point leaves either the old store alone, or a
// complete new one (and perhaps the old one, which the next open moves
// aside).
func migrate(dir string, toWAL bool, logger *slog.Logger) error {
	from, to := filepath.Join(dir, walDir), filepath.Join(dir, boltFile)
	if toWAL {
		from, to = to, from
	}
	if !exists(from) {
		return nil
	}
	aside := from + ".migrated-" + time.Now().UTC().Format("20060102T150405Z")
	if exists(to) {
		// A migration renamed the new store into place and stopped before
		// moving the old one aside.
		logger.Warn("raft log store: moving the other store's files aside", "from", from, "to", aside)
		return os.Rename(from, aside) // wrapped by OpenStores
	}
	tmp := to + ".migrating"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	logger.Info("raft log store: migrating the raft log", "from", from, "to", to)
	n, err := copyStores(from, tmp, toWAL)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("migrate %s to %s: %w", from, to, err)
	}
	if err := os.Rename(tmp, to); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := os.Rename(from, aside); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	logger.Info("raft log store: migrated", "entries", n, "old_store", aside)
	return nil
}

// The stable store's keys (hashicorp/raft's, unexported there).
var (
	keyCurrentTerm  = []byte("CurrentTerm")
	keyLastVoteTerm = []byte("LastVoteTerm")
	keyLastVoteCand = []byte("LastVoteCand")
)

type stableLog interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// copyStores copies every entry and the term and vote from the store at
// from into a new store at to.
func copyStores(from, to string, toWAL bool) (int, error) {
	openBolt := func(path string) (stableLog, error) { return openBoltFile(path, false) }
	openWAL := func(path string) (stableLog, error) { return openWALDir(path) }
	openSrc, openDst := openWAL, openBolt
	if toWAL {
		openSrc, openDst = openBolt, openWAL
	}
	src, err := openSrc(from)
	if err != nil {
		return 0, err
	}
	defer func() { _ = src.Close() }()
	dst, err := openDst(to)
	if err != nil {
		return 0, err
	}
	defer func() { _ = dst.Close() }()
	first, err := src.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := src.LastIndex()
	if err != nil {
		return 0, err
	}
	copied := 0
	for i := first; i > 0 && i <= last; {
		batch := make([]*raft.Log, 0, 512)
		for ; i <= last && len(batch) < cap(batch); i++ {
			l := new(raft.Log)
			if err := src.GetLog(i, l); err != nil {
				return copied, fmt.Errorf("entry %d: %w", i, err)
			}
			batch = append(batch, l)
		}
		if err := dst.StoreLogs(batch); err != nil {
			return copied, fmt.Errorf("store entries up to %d: %w", i-1, err)
		}
		copied += len(batch)
	}
	for _, k := range [][]byte{keyCurrentTerm, keyLastVoteTerm} {
		v, err := src.GetUint64(k)
		if err != nil && !notFound(err) {
			return copied, fmt.Errorf("%s: %w", k, err)
		}
		if err := dst.SetUint64(k, v); err != nil {
			return copied, fmt.Errorf("%s: %w", k, err)
		}
	}
	v, err := src.Get(keyLastVoteCand)
	if err != nil && !notFound(err) {
		return copied, fmt.Errorf("%s: %w", keyLastVoteCand, err)
	}
	if err := dst.Set(keyLastVoteCand, v); err != nil {
		return copied, fmt.Errorf("%s: %w", keyLastVoteCand, err)
	}
	return copied, nil
}

// notFound reports a stable store's "no such key": raft-boltdb's error
// (raft-wal answers nil).
func notFound(err error) bool { return errors.Is(err, raftboltdb.ErrKeyNotFound) }

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
