package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
)

// A follower notices its leader's death through raft's heartbeat timeout:
// half a second to a second of silence by default, before an election can
// even begin. But a leader that dies (a crash, a SIGKILL, an OOM kill) has
// its sockets closed by its kernel, and the followers can see that at once.
// So each follower keeps one Cluster.Watch call open to its leader; the
// leader answers it when it stops leading or after watchHold. When the call
// fails instead, on a connection the leader's side closed, while that node
// is still the leader this follower knows, the follower shortens its
// heartbeat timeout to the leader lease for a while: raft then checks
// at once, and stands for election within one lease of the last heartbeat.
//
// A false alarm (a connection closed for another reason) costs nothing:
// pre-vote fails while the other followers still hear from the leader, and
// the next heartbeat makes this node a follower again. A leader cut off by
// a partition closes nothing, and is found out by the heartbeat timeout as
// before.

const (
	// watchHold is how long a leader holds a Watch call before answering.
	watchHold = 15 * time.Second
	// watchIdle is how long a follower without a leader waits to look again.
	watchIdle = 50 * time.Millisecond
)

// holdWatch returns when this node stops leading (false), stops (false),
// or after watchHold (true).
func (n *Node) holdWatch() bool {
	n.watchers.Add(1)
	defer n.watchers.Add(-1)
	hold := time.NewTimer(watchHold)
	defer hold.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for n.IsLeader() {
		select {
		case <-n.stop:
			return false
		case <-hold.C:
			return true
		case <-tick.C:
		}
	}
	return false
}

// watchLoop keeps a Watch open to the leader while this node follows.
func (n *Node) watchLoop() {
	defer n.bg.Done()
	for {
		select {
		case <-n.stop:
			return
		default:
		}
		_, addr := n.Leader()
		if addr == "" || n.raft.State() != raft.Follower {
			select {
			case <-n.stop:
				return
			case <-time.After(watchIdle):
			}
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, watchHold+5*time.Second)
		_, sent, err := n.peers.watch(ctx, addr)
		expired := ctx.Err() != nil
		cancel()
		switch {
		case err == nil:
		case sent && !expired && !isUnknownMethod(err):
			if _, now := n.Leader(); now == addr && n.raft.State() == raft.Follower {
				n.leaderGone(addr)
			}
		default:
			// Not sent (no connection yet), timed out, or an older leader:
			// nothing learnt; look again shortly.
			select {
			case <-n.stop:
				return
			case <-time.After(watchIdle):
			}
		}
	}
}

// leaderGone makes raft notice the loss of the leader at addr within one
// leader lease, then restores the configured heartbeat timeout once a
// leader is known again (or a few election timeouts have passed).
func (n *Node) leaderGone(addr string) {
	fast := n.cfg.Raft.LeaderLeaseTimeout
	if fast <= 0 || fast >= n.cfg.Raft.HeartbeatTimeout {
		return
	}
	rc := n.raft.ReloadableConfig()
	normal := rc.HeartbeatTimeout
	rc.HeartbeatTimeout = fast
	if err := n.raft.ReloadConfig(rc); err != nil {
		n.logger.Warn("could not shorten the heartbeat timeout after losing the leader", "err", err)
		return
	}
	n.logger.Info("leader's connection closed: standing for election without waiting out the heartbeat timeout",
		"leader", DialAddr(addr), "heartbeat_timeout", fast)
	deadline := time.Now().Add(4 * n.cfg.Raft.ElectionTimeout)
	for time.Now().Before(deadline) {
		if _, now := n.Leader(); now != "" && now != addr {
			break
		}
		select {
		case <-n.stop:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	rc = n.raft.ReloadableConfig()
	rc.HeartbeatTimeout = normal
	if err := n.raft.ReloadConfig(rc); err != nil {
		n.logger.Warn("could not restore the heartbeat timeout", "err", err)
	}
}
