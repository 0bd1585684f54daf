package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// Bootstrapping with bootstrap_expect = N (see DESIGN.md for the argument):
//
//  1. A node that holds raft state never bootstraps, and says so in its
//     gossip metadata; a node that sees such a member waits to be added.
//  2. Among the alive members without state that all expect N, a node
//     proposes the N lowest ids (with their raft addresses) and advertises
//     the digest of that set.
//  3. It bootstraps only when it is itself in its proposed set, every
//     other member of the set advertises the same digest, and its own
//     proposal has not changed for a settle period.
//
// Every node that bootstraps therefore writes the identical configuration,
// which raft accepts as one cluster.

// bootstrapState is the progress of one node's bootstrap.
type bootstrapState struct {
	done   bool
	digest string
	since  time.Time
	reason string
}

// candidate is what the decision needs to know about one alive member.
type candidate struct {
	ID     string
	Raft   string
	Expect int
	State  bool
	Set    string
}

// decideBootstrap proposes a bootstrap set from the alive members (self
// included) and says why this node may not bootstrap with it yet ("" =
// it may, once the proposal has settled). digest is "" when there is no
// proposal.
func decideBootstrap(self string, expect int, alive []candidate) (servers []raft.Server, digest, reason string) {
	for _, c := range alive {
		if c.State {
			return nil, "", fmt.Sprintf("member %s already belongs to a cluster: waiting to be added", c.ID)
		}
	}
	var fresh []candidate
	for _, c := range alive {
		switch c.Expect {
		case expect:
			fresh = append(fresh, c)
		case 0:
			// A node without bootstrap_expect only ever joins: it is
			// added once the cluster exists, and counts for nothing here.
		default:
			return nil, "", fmt.Sprintf("member %s expects %d nodes, this node %d: fix bootstrap_expect", c.ID, c.Expect, expect)
		}
	}
	if len(fresh) < expect {
		return nil, "", fmt.Sprintf("waiting for %d nodes, %d in gossip", expect, len(fresh))
	}
	slices.SortFunc(fresh, func(a, b candidate) int { return strings.Compare(a.ID, b.ID) })
	chosen := fresh[:expect]
	h := sha256.New()
	in := false
	for _, c := range chosen {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(c.ID), Address: raft.ServerAddress(c.Raft)})
		_, _ = fmt.Fprintf(h, "%s=%s;", c.ID, c.Raft) // a hash.Hash never fails a Write
		in = in || c.ID == self
	}
	digest = hex.EncodeToString(h.Sum(nil))[:16]
	if !in {
		return servers, digest, "not among the lowest ids of the first nodes: waiting to be added"
	}
	for _, c := range chosen {
		if c.ID != self && c.Set != digest {
			return servers, digest, fmt.Sprintf("waiting for %s to propose the same set", c.ID)
		}
	}
	return servers, digest, ""
}

// bootstrapCandidates lists the alive members as bootstrap candidates,
// this node from its own current metadata.
func (n *Node) bootstrapCandidates() []candidate {
	g := n.gossip
	g.mu.Lock()
	local := g.local
	g.mu.Unlock()
	out := []candidate{{ID: local.ID, Raft: local.Raft, Expect: local.Expect, State: local.State, Set: local.Set}}
	for name, m := range g.snapshot() {
		if name == local.ID || m.state != memberlist.StateAlive {
			continue
		}
		if m.bad != nil {
			if _, ok := g.warn.allow("meta " + name); ok {
				n.logger.Warn("ignoring gossip member with unreadable metadata", "member", name, "err", m.bad)
			}
			continue
		}
		out = append(out, candidate{ID: m.meta.ID, Raft: m.meta.Raft, Expect: m.meta.Expect, State: m.meta.State, Set: m.meta.Set})
	}
	return out
}

// bootstrapStep advances bootstrap_expect by one look at gossip.
func (n *Node) bootstrapStep(now time.Time) {
	b := &n.boot
	if b.done {
		return
	}
	if n.raft.LastIndex() > 0 {
		// Added by a leader, or bootstrapped: this node is in a cluster.
		b.done = true
		n.gossip.setMeta(func(m *meta) { m.State, m.Set = true, "" })
		return
	}
	servers, digest, reason := decideBootstrap(n.cfg.NodeID, n.cfg.BootstrapExpect, n.bootstrapCandidates())
	if digest != b.digest {
		b.digest, b.since = digest, now
		n.gossip.setMeta(func(m *meta) { m.Set = digest })
	}
	if reason == "" && now.Sub(b.since) < n.gossip.settle {
		reason = "waiting for gossip to settle"
	}
	if reason != "" {
		if reason != b.reason {
			n.logger.Info("bootstrap_expect: not bootstrapping yet", "reason", reason)
			b.reason = reason
		}
		return
	}
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	switch {
	case err == nil:
		n.logger.Info("bootstrapped a new cluster", "servers", describeServers(servers))
	case errors.Is(err, raft.ErrCantBootstrap):
		n.logger.Info("bootstrap_expect: raft state appeared meanwhile, not bootstrapping")
	default:
		n.logger.Error("bootstrap failed", "err", err)
		return
	}
	b.done = true
	n.gossip.setMeta(func(m *meta) { m.State, m.Set = true, "" })
}

func describeServers(servers []raft.Server) string {
	parts := make([]string, len(servers))
	for i, s := range servers {
		parts[i] = string(s.ID) + "@" + string(s.Address)
	}
	return strings.Join(parts, ",")
}
