package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// Static peers without gossip (DESIGN.md, "Identity"). A node without raft
// state never bootstraps on its own: it asks every configured peer who it
// is (Ping over the cluster port) and
//
//   - if any peer holds raft state, a cluster exists: it asks that
//     cluster's leader to add it (Join), as a non-voter first;
//   - if every peer answers and none holds state, this is a new cluster:
//     it bootstraps with every peer at its incarnation's address, which
//     all peers compute alike;
//   - otherwise it waits and asks again.
//
// So a node that lost its data dir cannot bootstrap a second cluster, nor
// count as the voter it was: it comes back as a new member.

const (
	// staticPingTimeout bounds one peer's answer.
	staticPingTimeout = time.Second
	// staticRetryMax caps the backoff between rounds of asking.
	staticRetryMax = 2 * time.Second
	// promoteLag is how many entries a non-voter may still lack to count
	// as caught up and be promoted.
	promoteLag = 256
)

// staticJoinLoop runs staticStep until this node holds raft state.
func (n *Node) staticJoinLoop() {
	defer n.bg.Done()
	delay := 100 * time.Millisecond
	last := ""
	for n.raft.LastIndex() == 0 {
		done, why := n.staticStep()
		if done {
			return
		}
		if why != last {
			n.logger.Info("static peers: not in a cluster yet", "reason", why)
			last = why
		}
		select {
		case <-n.stop:
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, staticRetryMax)
	}
}

// staticStep makes one round of staticJoinLoop; done once bootstrapped.
func (n *Node) staticStep() (done bool, why string) {
	var (
		servers []raft.Server
		missing []string
		leaders []string
	)
	for _, p := range n.cfg.Peers {
		if p.ID == n.cfg.NodeID {
			servers = append(servers, n.self())
			continue
		}
		reply, err := n.ping(n.ctx, p.Address)
		switch {
		case err != nil:
			missing = append(missing, p.ID)
			continue
		case reply.ID != p.ID:
			missing = append(missing, fmt.Sprintf("%s (%s answers as %q)", p.ID, p.Address, reply.ID))
			continue
		case reply.HasState:
			leader := reply.Leader
			if leader == "" {
				leader = tagAddr(p.Address, reply.Incarnation) // maybe itself, once elected
			}
			leaders = append(leaders, leader)
		}
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID),
			Address: raft.ServerAddress(tagAddr(p.Address, reply.Incarnation))})
	}
	if len(leaders) > 0 {
		if err := n.askToJoin(leaders); err != nil {
			return false, fmt.Sprintf("a cluster exists, asking its leader to add this node: %v", err)
		}
		return false, "a cluster exists: its leader is adding this node"
	}
	if len(missing) > 0 {
		return false, fmt.Sprintf("waiting for every peer to answer before bootstrapping a new cluster: %v", missing)
	}
	slices.SortFunc(servers, func(a, b raft.Server) int { return compareIDs(a.ID, b.ID) })
	if err := n.bootstrap(servers); err != nil {
		return false, err.Error()
	}
	n.logger.Info("bootstrapped a new cluster with the static peers", "servers", describeServers(servers))
	return true, ""
}

func compareIDs(a, b raft.ServerID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ping asks the node at addr who it is, and notes its log version.
func (n *Node) ping(ctx context.Context, addr string) (PingReply, error) {
	ctx, cancel := context.WithTimeout(ctx, staticPingTimeout)
	defer cancel()
	reply, err := n.peers.ping(ctx, addr)
	if err == nil {
		n.versions.set(addr, reply.LogVersion)
	}
	return reply, err
}

// askToJoin sends Join to the first leader candidate that takes it.
func (n *Node) askToJoin(leaders []string) error {
	var errs []error
	for _, addr := range leaders {
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
		reply, err := n.peers.join(ctx, addr, JoinArgs{ID: n.cfg.NodeID, Addr: n.addr, Timeout: n.cfg.ApplyTimeout})
		cancel()
		switch {
		case err != nil:
		case reply.Code == codeOK:
			return nil
		case reply.Code == codeRetry:
			err = fmt.Errorf("%w (%s does not lead)", ErrNoLeader, DialAddr(addr))
		default:
			err = fmt.Errorf("leader %s: %w", DialAddr(addr), remoteError(reply))
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// admit makes the node id at addr a member, on the leader, after checking
// that addr answers as that node (its cluster port, its certificate): a
// server of that id at another address is a former incarnation (or the
// node moved) and is removed first; the node then comes in as a non-voter,
// which promotion makes a voter once it has caught up.
func (n *Node) admit(ctx context.Context, id, addr string) error {
	if id == n.cfg.NodeID {
		return fmt.Errorf("%w: %s is this leader's own id", errNotMember, id)
	}
	reply, err := n.ping(ctx, addr)
	switch {
	case err != nil:
		return fmt.Errorf("check %s at %s: %w", id, DialAddr(addr), err)
	case reply.ID != id:
		return fmt.Errorf("check %s at %s: %w: %q", id, DialAddr(addr), errNotMember, reply.ID)
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("read configuration: %w", err)
	}
	prev := cf.Index()
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) != id {
			continue
		}
		if string(s.Address) == addr {
			return nil
		}
		if sameIncarnation(string(s.Address), addr) {
			// The same incarnation at a new address: it kept its data.
			return n.configChange(ctx, "moving member to its new address", s.ID, raft.ServerAddress(addr),
				n.raft.AddVoter(s.ID, raft.ServerAddress(addr), prev, remaining(ctx, n.cfg.ApplyTimeout)))
		}
		if err := n.configChange(ctx, "removing the former incarnation of a member that lost its data", s.ID, s.Address,
			n.raft.RemoveServer(s.ID, prev, remaining(ctx, n.cfg.ApplyTimeout))); err != nil {
			return err
		}
		if cf = n.raft.GetConfiguration(); cf.Error() != nil {
			return fmt.Errorf("read configuration: %w", cf.Error())
		}
		prev = cf.Index()
	}
	return n.configChange(ctx, "adding member as a non-voter until it catches up", raft.ServerID(id), raft.ServerAddress(addr),
		n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), prev, remaining(ctx, n.cfg.ApplyTimeout)))
}

// sameIncarnation reports whether two raft addresses name one incarnation
// (tagged alike; untagged addresses say nothing, so they differ unless
// equal).
func sameIncarnation(a, b string) bool {
	_, ia := splitAddr(a)
	_, ib := splitAddr(b)
	return ia != "" && ia == ib
}

// configChange waits for a configuration change and logs it.
func (n *Node) configChange(ctx context.Context, what string, id raft.ServerID, addr raft.ServerAddress, f raft.IndexFuture) error {
	err, done := wait(ctx, f)
	if !done || err != nil {
		n.logger.Warn("membership change failed", "change", what, "member", id, "address", addr, "err", err)
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	n.logger.Info("membership: "+what, "member", id, "address", addr, "index", f.Index())
	return nil
}

// caughtUp reports whether the member at addr answers as id and holds the
// log up to nearly the leader's commit index.
func (n *Node) caughtUp(ctx context.Context, id, addr string) bool {
	ci := n.raft.CommitIndex()
	reply, err := n.ping(ctx, addr)
	return err == nil && reply.ID == id && !reply.Leaving && reply.LastIndex+promoteLag >= ci
}

// staticMembershipLoop promotes, on the leader of a static cluster, the
// configured peers that are non-voters (new incarnations) once caught up.
func (n *Node) staticMembershipLoop() {
	defer n.bg.Done()
	t := time.NewTicker(n.opts.ReconcileInterval)
	defer t.Stop()
	peers := map[string]bool{}
	for _, p := range n.cfg.Peers {
		peers[p.ID] = true
	}
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if !n.IsLeader() {
			continue
		}
		cf := n.raft.GetConfiguration()
		if cf.Error() != nil {
			continue
		}
		for _, s := range cf.Configuration().Servers {
			if s.Suffrage == raft.Voter || !peers[string(s.ID)] || !n.caughtUp(n.ctx, string(s.ID), string(s.Address)) {
				continue
			}
			_ = n.configChange(n.ctx, "promoting caught-up member to voter", s.ID, s.Address,
				n.raft.AddVoter(s.ID, s.Address, cf.Index(), n.cfg.ApplyTimeout))
			break // the configuration changed: look again next tick
		}
	}
}
