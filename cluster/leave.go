package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
			var reply RemoveReply
			if _, err = n.fwd.call(ctx, addr, "Remove", RemoveArgs{ID: n.cfg.NodeID, Timeout: remaining(ctx, n.cfg.ApplyTimeout)}, &reply); err == nil {
				switch reply.Code {
				case codeOK:
					return nil
				case codeRetry:
					err = ErrNoLeader
				case codeApply:
					if strings.Contains(reply.Text, ErrLastVoter.Error()) {
						return fmt.Errorf("%w (leader %s)", ErrLastVoter, addr)
					}
					return fmt.Errorf("leader %s: %s", addr, reply.Text) //nolint:err113 // the leader's refusal, relayed as text
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

// RemoveArgs asks the leader to remove a member that is leaving.
type RemoveArgs struct {
	ID      string
	Timeout time.Duration
}

// RemoveReply carries the outcome: codeOK, codeRetry (not the leader), or
// codeApply with the refusal in Text.
type RemoveReply struct {
	Code uint8
	Text string
}

// Remove removes a leaving member if this node leads.
func (f *forwarder) Remove(args RemoveArgs, reply *RemoveReply) error {
	ctx, cancel := context.WithTimeout(f.n.ctx, min(args.Timeout, f.n.cfg.ApplyTimeout))
	defer cancel()
	err := f.n.removeServer(ctx, args.ID)
	switch {
	case err == nil:
	case errors.Is(err, ErrNoLeader), errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
		reply.Code = codeRetry
	default:
		reply.Code, reply.Text = codeApply, err.Error()
	}
	return nil
}
