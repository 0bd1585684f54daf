package cluster

import (
	"context"
	"time"
)

// nudgeAfter is how long a follower waits to apply an index the leader
// told it about before asking the leader for a nudge.
const nudgeAfter = time.Millisecond

// hashicorp/raft tells followers the new commit index only with the next
// AppendEntries: the next write, or the CommitTimeout tick when writes
// stop. A follower answering a forwarded write (or a linearizable read)
// must apply the entry first, so a lone client on a follower would wait a
// whole CommitTimeout per call (20 ms by default; 32 ms measured). A short
// CommitTimeout fixes the latency but makes idle followers chatter (2 ms
// cost a quarter of a core for three idle nodes). Instead the follower asks
// for a nudge when it needs one, and the leader appends a barrier: its
// replication carries the commit index at once.

// nudge appends a barrier unless one is already on its way; the barrier's
// AppendEntries carry the commit index to every follower.
func (n *Node) nudge() {
	if !n.nudging.CompareAndSwap(false, true) {
		return
	}
	fut := n.raft.Barrier(n.cfg.ApplyTimeout)
	go func() {
		_ = fut.Error()
		n.nudging.Store(false)
	}()
}

// waitApplied waits until this node has applied index, asking the leader
// at leaderAddr for a nudge if that does not happen almost at once.
func (n *Node) waitApplied(ctx context.Context, index uint64, leaderAddr string) error {
	if n.fsm.AppliedIndex() >= index {
		return nil
	}
	if leaderAddr != "" {
		short, cancel := context.WithTimeout(ctx, nudgeAfter)
		err := n.fsm.WaitApplied(short, index)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() == nil {
			_ = n.peers.nudge(ctx, leaderAddr, index)
		}
	}
	return n.fsm.WaitApplied(ctx, index) // callers wrap
}
