package cluster

import (
	"errors"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// The raft log is bounded in bytes, not only in entries. raft counts
// entries (snapshot_threshold, trailing_logs), and an entry may carry one
// small write or a batch of hundreds: with 500-item batches the default
// counts let raft.db grow past a gigabyte, which bbolt maps into the
// process (its pages count in the node's RSS and its cgroup's memory) and
// a restarting node reads. So every logCheckInterval (2 s) the node turns the
// byte bounds into counts by the average entry size it has seen, never
// above the configured counts, and takes a snapshot as soon as the log
// since the last one passes the snapshot bound rather than waiting for
// raft's snapshot_interval.
//
// The snapshot bound is maxLogSnapshotBytes, or half the storages' total
// max_memory when every replicated storage is bounded by one, but at least
// minLogSnapshotBytes: a small cache should not carry a log many times its
// size. Half of it is kept after a snapshot, for followers that are behind
// to catch up from the log rather than a snapshot. raft.db then holds about
// 1.5 times the bound at most (plus what is written while a snapshot is
// taken), which is the node's fixed overhead in mapped file pages.
const (
	maxLogSnapshotBytes = 64 << 20
	minLogSnapshotBytes = 8 << 20
	// minLogEntries is the least either count is lowered to.
	minLogEntries    = 64
	logCheckInterval = 2 * time.Second
)

// logSnapshotBytes is the snapshot bound for this node's storages.
func (n *Node) logSnapshotBytes() int64 {
	var total int64
	for _, name := range n.fsm.Names() {
		l := n.opts.Limits[name]
		if l.MaxBytes <= 0 {
			return maxLogSnapshotBytes
		}
		total += l.MaxBytes
	}
	return min(max(total/2, minLogSnapshotBytes), maxLogSnapshotBytes)
}

// logBounds are the entry counts the byte bounds come to.
type logBounds struct{ threshold, trailing uint64 }

// boundsFor returns the counts for entries of avg bytes, capped by the
// configured ones.
func (n *Node) boundsFor(avg int64) logBounds {
	count := func(bytes int64, configured uint64) uint64 {
		c := uint64(max(bytes/max(avg, 1), minLogEntries))
		return min(c, configured)
	}
	bytes := n.logSnapshotBytes()
	return logBounds{
		threshold: count(bytes, n.cfg.Raft.SnapshotThreshold),
		trailing:  count(bytes/2, n.cfg.Raft.TrailingLogs),
	}
}

// logSizeLoop keeps the log within its byte bounds.
func (n *Node) logSizeLoop() {
	defer n.bg.Done()
	t := time.NewTicker(logCheckInterval)
	defer t.Stop()
	cur := logBounds{threshold: n.cfg.Raft.SnapshotThreshold, trailing: n.cfg.Raft.TrailingLogs}
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		avg := n.stores.AvgEntryBytes()
		if avg == 0 {
			continue
		}
		if b := n.boundsFor(avg); changed(cur, b) {
			err := n.raft.ReloadConfig(raft.ReloadableConfig{
				TrailingLogs:      b.trailing,
				SnapshotInterval:  n.cfg.Raft.SnapshotInterval,
				SnapshotThreshold: b.threshold,
				HeartbeatTimeout:  n.cfg.Raft.HeartbeatTimeout,
				ElectionTimeout:   n.cfg.Raft.ElectionTimeout,
			})
			if err != nil {
				n.logger.Warn("bounding the raft log by bytes", "err", err)
			} else {
				n.logger.Debug("raft log bounds", "avg_entry_bytes", avg, "snapshot_threshold", b.threshold, "trailing_logs", b.trailing)
				cur = b
			}
		}
		n.snapshotIfLong(cur)
	}
}

// changed reports whether the bounds moved by more than a quarter, so a
// drifting average does not reload raft's config every few seconds.
func changed(a, b logBounds) bool {
	far := func(x, y uint64) bool { return x > y+y/4 || y > x+x/4 }
	return far(a.threshold, b.threshold) || far(a.trailing, b.trailing)
}

// snapshotIfLong takes a snapshot when the log since the last one holds
// more entries than the threshold.
func (n *Node) snapshotIfLong(b logBounds) {
	st := n.raft.Stats()
	last, _ := strconv.ParseUint(st["last_log_index"], 10, 64)
	snap, _ := strconv.ParseUint(st["last_snapshot_index"], 10, 64)
	if last < snap+b.threshold {
		return
	}
	err := n.raft.Snapshot().Error()
	if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		n.logger.Warn("snapshot of a long log failed", "entries", last-snap, "err", err)
	}
}
