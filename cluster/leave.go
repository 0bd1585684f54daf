package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// gossipLeaveTimeout bounds the broadcast of this node's departure.
const gossipLeaveTimeout = 3 * time.Second

// Leave prepares a graceful stop (SIGTERM): a leader hands leadership to
// another voter, the node announces its departure in gossip, and with
// cluster.leave_on_terminate it asks the leader to remove it from raft, so
// the remaining voters need not wait for reap_after. Close still has to be
// called afterwards. Leave never fails the shutdown: it returns what went
// wrong for the caller to log.
func (n *Node) Leave(ctx context.Context) error {
	if n.closed.Load() {
		return ErrShutdown
	}
	n.leaving.Store(true)
	var errs []error
	if n.IsLeader() && n.otherVoters() > 0 {
		if err, _ := wait(ctx, n.raft.LeadershipTransfer()); err != nil {
			errs = append(errs, fmt.Errorf("leadership transfer: %w", err))
		} else {
			n.logger.Info("leave: handed over leadership")
		}
	}
	if n.gossip != nil {
		if err := n.gossip.leave(gossipLeaveTimeout); err != nil {
			errs = append(errs, fmt.Errorf("leave gossip: %w", err))
		}
	}
	if n.cfg.LeaveOnTerminate {
		if err := n.removeSelf(ctx); err != nil {
			errs = append(errs, fmt.Errorf("leave raft: %w", err))
		} else {
			n.logger.Info("leave: removed from the raft configuration")
		}
	}
	return errors.Join(errs...)
}

// otherVoters counts the voters besides this node.
func (n *Node) otherVoters() int {
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return 0
	}
	count := 0
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter && string(s.ID) != n.cfg.NodeID {
			count++
		}
	}
	return count
}

// removeSelf asks the leader, wherever it is, to remove this node.
func (n *Node) removeSelf(ctx context.Context) error {
	backoff := 20 * time.Millisecond
	for {
		var err error
		if n.IsLeader() {
			err = n.removeServer(ctx, n.cfg.NodeID)
		} else if _, addr := n.Leader(); addr != "" {
			var r Result
			r, err = n.peers.remove(ctx, addr, RemoveArgs{ID: n.cfg.NodeID, Timeout: remaining(ctx, n.cfg.ApplyTimeout)})
			if err == nil {
				switch r.Code {
				case codeOK:
					return nil
				case codeRetry:
					err = ErrNoLeader
				default:
					return fmt.Errorf("leader %s: %w", DialAddr(addr), remoteError(r))
				}
			}
		} else {
			err = ErrNoLeader
		}
		if err == nil || errors.Is(err, ErrLastVoter) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// removeServer removes id on the leader: ErrNoLeader when this node does
// not lead, ErrLastVoter rather than leave the cluster without a voter.
func (n *Node) removeServer(ctx context.Context, id string) error {
	if !n.IsLeader() {
		return ErrNoLeader
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("read configuration: %w", err)
	}
	found, voters, isVoter := false, 0, false
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
		if string(s.ID) == id {
			found, isVoter = true, s.Suffrage == raft.Voter
		}
	}
	if n.gossip != nil && id != n.cfg.NodeID {
		n.gossip.markLeaving(id)
	}
	if !found {
		return nil
	}
	if isVoter && voters == 1 {
		return fmt.Errorf("%w: %s", ErrLastVoter, id)
	}
	err, done := wait(ctx, n.raft.RemoveServer(raft.ServerID(id), cf.Index(), remaining(ctx, n.cfg.ApplyTimeout)))
	if !done || err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	n.logger.Info("membership: removed member on its request", "member", id)
	return nil
}
