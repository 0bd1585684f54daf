package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
	eventlog "github.com/kvnode/kvnode/log"
)

// housekeepingLoop runs the leader's periodic duties: bringing replicated
// storage limits to the configured ones (evict.go) and sweeping expired
// keys. Followers do neither: both are writes, and only the leader's
// reach every node through the log.
func (n *Node) housekeepingLoop() {
	defer n.bg.Done()
	t := time.NewTicker(n.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			if n.raft.State() == raft.Leader {
				n.syncLimits()
				n.sweep()
			}
		}
	}
}

// sweep removes expired keys by the leader's clock through the log
// (drivers.Sweep: the one sweep, shared with single-node storages). Reads
// already hide such keys on every node; the sweep only frees their memory.
func (n *Node) sweep() {
	for _, name := range n.fsm.Names() {
		e, _ := n.fsm.Engine(name)
		commit := func(ctx context.Context, op drivers.Op) error {
			ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
			defer cancel()
			_, err, _ := n.applyLeader(ctx, eventlog.Event{Storage: name, Op: op})
			return err
		}
		if _, err := drivers.Sweep(n.ctx, e, n.stampNow, n.cfg.SweepBatch, commit); err != nil {
			n.logger.Warn("expiry sweep failed", "storage", name, "err", err)
			return
		}
	}
}
