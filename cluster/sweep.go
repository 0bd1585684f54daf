package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
	eventlog "github.com/kvnode/kvnode/log"
)

// sweepLoop makes the leader propose Expire events for keys whose deadline
// passed by its clock. Reads already hide such keys on every node; the
// sweep only frees their memory, through the log so all nodes stay equal.
func (n *Node) sweepLoop() {
	defer n.bg.Done()
	t := time.NewTicker(n.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			if n.raft.State() == raft.Leader {
				n.sweep()
			}
		}
	}
}

func (n *Node) sweep() {
	n.syncLimits()
	for _, name := range n.fsm.Names() {
		e, _ := n.fsm.Engine(name)
		// A bounded number of batches per tick keeps writes flowing.
		for range 8 {
			items, err := e.Expired(n.stampNow(), n.cfg.SweepBatch)
			if err != nil || len(items) == 0 {
				if err != nil {
					n.logger.Warn("expiry sweep: scan failed", "storage", name, "err", err)
				}
				break
			}
			ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
			_, err, _ = n.applyLeader(ctx, eventlog.Event{Storage: name, Op: drivers.Op{Kind: drivers.OpExpire, Items: items}})
			cancel()
			if err != nil {
				n.logger.Warn("expiry sweep: propose failed", "storage", name, "err", err)
				return
			}
			if len(items) < n.cfg.SweepBatch {
				break
			}
		}
	}
}
