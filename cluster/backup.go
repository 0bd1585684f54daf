package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/fsm"
)

// Backup errors. They live here rather than in errors.go while another
// change owns that file; they are sentinels all the same.
var (
	// ErrNotLeader is returned by RestoreBackup on a node that does not
	// lead; the text names the leader to send the restore to.
	ErrNotLeader = errors.New("not the leader")
	// ErrBackup wraps a backup that cannot be taken or restored: nothing
	// applied yet, a damaged stream, storages that do not match.
	ErrBackup = errors.New("backup")
)

// restoreIndexGap is added to the last log index to choose the index a
// restored backup gets. raft picks max(its last index, the index given)+1
// when it processes the restore; asking for a clearly larger index makes
// that choice the one the stream was rewritten for, even if writes land
// between choosing it and raft processing the restore. Raft leaves the gap
// empty on purpose: followers then have to install the snapshot.
const restoreIndexGap = 1 << 16

// BackupInfo describes a snapshot taken by Backup.
type BackupInfo struct {
	// NodeID is the node that took it.
	NodeID string
	// Index and Term are raft's for the snapshot.
	Index, Term uint64
	// Size is the length of the stream in bytes.
	Size int64
}

// Backup takes a consistent point-in-time snapshot of every replicated
// storage and returns its stream (an fsm snapshot stream, checksummed);
// the caller must close it. Unless stale is set, it first waits until this
// node has applied every write acknowledged before the call (ReadIndex), so
// the backup holds them all even when taken on a follower; stale skips
// that, for a node cut off from its leader.
func (n *Node) Backup(ctx context.Context, stale bool) (BackupInfo, io.ReadCloser, error) {
	if n.closed.Load() {
		return BackupInfo{}, nil, ErrShutdown
	}
	if !stale {
		idx, err := n.ReadIndex(ctx)
		if err != nil {
			return BackupInfo{}, nil, err
		}
		if err := n.fsm.WaitApplied(ctx, idx); err != nil {
			return BackupInfo{}, nil, fmt.Errorf("%w (%w)", ErrNotLinearizable, err)
		}
	}
	f := n.raft.Snapshot()
	err, done := wait(ctx, f)
	var (
		meta *raft.SnapshotMeta
		rc   io.ReadCloser
	)
	switch {
	case !done:
		return BackupInfo{}, nil, fmt.Errorf("%w: snapshot: %w", ErrBackup, err)
	case errors.Is(err, raft.ErrNothingNewToSnapshot):
		meta, rc, err = n.latestSnapshot()
	case err != nil:
		return BackupInfo{}, nil, fmt.Errorf("%w: snapshot: %w", ErrBackup, err)
	default:
		meta, rc, err = f.Open()
	}
	if err != nil {
		return BackupInfo{}, nil, fmt.Errorf("%w: open snapshot: %w", ErrBackup, err)
	}
	n.logger.Info("backup snapshot taken", "index", meta.Index, "term", meta.Term, "bytes", meta.Size)
	return BackupInfo{NodeID: n.ID(), Index: meta.Index, Term: meta.Term, Size: meta.Size}, rc, nil
}

// latestSnapshot opens the newest stored snapshot: raft has nothing new to
// snapshot when it has applied nothing since the newest one.
func (n *Node) latestSnapshot() (*raft.SnapshotMeta, io.ReadCloser, error) {
	snaps, err := n.stores.Snapshots.List()
	if err != nil {
		return nil, nil, err // wrapped by Backup
	}
	if len(snaps) == 0 {
		return nil, nil, errors.New("this node has applied nothing yet") // wrapped in ErrBackup
	}
	return n.stores.Snapshots.Open(snaps[0].ID)
}

// RestoreInfo describes a completed RestoreBackup.
type RestoreInfo struct {
	// SourceIndex is the applied index the backup was taken at.
	SourceIndex uint64
	// Index is the raft index the restored state has in this cluster.
	Index uint64
	// Storages are the storages the backup held.
	Storages []string
	// Cleared are replicated storages the backup did not hold: they are
	// now empty.
	Cleared []string
	// Size is the length of the backup stream in bytes.
	Size int64
}

// RestoreBackup replaces the state of every replicated storage, on every
// node of the cluster, with the backup stream r (as Backup returns it). It
// runs on the leader only (ErrNotLeader names the leader otherwise) and
// returns once a quorum holds the restored state.
//
// The stream is spooled to the data directory and verified first; a
// damaged stream, one holding a storage this cluster does not replicate,
// or one holding more in a storage than the storage's configured limits
// allow (max_memory, max_keys) changes nothing (ErrBackup). The header's
// index is then rewritten to the index raft gives the restore here (see
// fsm.Reindex) and raft.Restore installs it: the leader restores its state
// machine and every follower installs the snapshot. Writes in flight at
// that moment are aborted (their outcome is unknown). As raft documents,
// this is meant for disaster recovery into a fresh cluster, not for a
// cluster serving traffic.
func (n *Node) RestoreBackup(ctx context.Context, r io.Reader) (RestoreInfo, error) {
	var info RestoreInfo
	if err := n.requireLeader(); err != nil {
		return info, err
	}
	raw, err := n.spool("kvnode-backup-in-*")
	if err != nil {
		return info, err
	}
	defer removeSpool(raw)
	src, err := fsm.VerifySections(io.TeeReader(r, raw), n.checkBackupLimits)
	if err != nil {
		return info, fmt.Errorf("%w: %w", ErrBackup, err)
	}
	info.SourceIndex, info.Storages, info.Size = src.Index, src.Storages, src.Size
	names := n.fsm.Names()
	for _, s := range src.Storages {
		if !slices.Contains(names, s) {
			return info, fmt.Errorf("%w: the backup holds storage %q, which this cluster does not replicate (it replicates %v)", ErrBackup, s, names)
		}
	}
	for _, s := range names {
		if !slices.Contains(src.Storages, s) {
			info.Cleared = append(info.Cleared, s)
		}
	}

	if err := n.requireLeader(); err != nil {
		return info, err
	}
	ask := max(n.raft.LastIndex(), src.Index) + restoreIndexGap
	info.Index = ask + 1
	out, err := n.spool("kvnode-backup-restore-*")
	if err != nil {
		return info, err
	}
	defer removeSpool(out)
	if _, err := raw.Seek(0, io.SeekStart); err != nil {
		return info, fmt.Errorf("%w: spool: %w", ErrBackup, err)
	}
	if _, err := fsm.Reindex(out, raw, info.Index, n.fsm.Clock()); err != nil {
		return info, fmt.Errorf("%w: %w", ErrBackup, err)
	}
	size, err := out.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = out.Seek(0, io.SeekStart)
	}
	if err != nil {
		return info, fmt.Errorf("%w: spool: %w", ErrBackup, err)
	}

	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: ask, Term: n.raft.CurrentTerm(), Size: size}
	if err := n.raftRestore(ctx, meta, out); err != nil {
		return info, err
	}
	if got := n.raft.Stats()["last_snapshot_index"]; got != strconv.FormatUint(info.Index, 10) {
		// More than restoreIndexGap entries were appended while the restore
		// waited: the restored state is right, but its recorded index is
		// below raft's, so linearizable reads may briefly see a follower's
		// pre-restore state until it installs the snapshot.
		n.logger.Warn("restored backup at another index than planned", "planned", info.Index, "raft", got)
	}
	n.logger.Info("backup restored", "source_index", info.SourceIndex, "index", info.Index,
		"storages", info.Storages, "cleared", info.Cleared, "bytes", info.Size)
	return info, nil
}

// raftRestore hands the spooled stream to raft.Restore. raft refuses while
// a configuration change is not yet committed (a new leader's first
// moments, a voter being added): a barrier then waits for it, and the
// restore is tried again until ctx ends.
func (n *Node) raftRestore(ctx context.Context, meta *raft.SnapshotMeta, spool *os.File) error {
	backoff := 10 * time.Millisecond
	for {
		if err, done := wait(ctx, n.raft.Barrier(remaining(ctx, n.cfg.ApplyTimeout))); !done || err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				return n.notLeader()
			}
			return fmt.Errorf("%w: wait for the log to be applied: %w", ErrBackup, err)
		}
		if _, err := spool.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("%w: spool: %w", ErrBackup, err)
		}
		err := n.raft.Restore(meta, spool, remaining(ctx, 10*time.Minute))
		switch {
		case err == nil:
			return nil
		case errors.Is(err, raft.ErrNotLeader):
			return n.notLeader()
		case !strings.Contains(err.Error(), "cannot restore snapshot now"):
			return fmt.Errorf("%w: raft restore: %w", ErrBackup, err)
		}
		n.logger.Info("restore waits for a configuration change to commit", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: raft restore: %w (%w)", ErrBackup, err, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (n *Node) requireLeader() error {
	if n.closed.Load() {
		return ErrShutdown
	}
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	return nil
}

func (n *Node) notLeader() error {
	id, addr := n.Leader()
	if id == "" {
		return fmt.Errorf("%w: %w", ErrNotLeader, ErrNoLeader)
	}
	return fmt.Errorf("%w: send the restore to the leader, node %s (cluster address %s)", ErrNotLeader, id, addr)
}

// spool creates a temporary file in the data directory: a backup can be as
// large as the state, which the data directory has room for.
func (n *Node) spool(pattern string) (*os.File, error) {
	f, err := os.CreateTemp(n.cfg.DataDir, pattern)
	if err != nil {
		return nil, fmt.Errorf("%w: spool: %w", ErrBackup, err)
	}
	return f, nil
}

func removeSpool(f *os.File) {
	_ = f.Close()
	_ = os.Remove(f.Name())
}
