package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// defaultReconcileInterval is how often the leader compares raft's
// configuration with gossip when no membership event prompts it.
const defaultReconcileInterval = time.Second

// maxChangesPerPass bounds configuration changes in one reconcile pass, so
// a flood of members cannot keep the loop from noticing shutdown.
const maxChangesPerPass = 8

// probeTimeout bounds the check of a new member's cluster port.
const probeTimeout = 3 * time.Second

// reconciler is the leader's memory between passes.
type reconciler struct {
	wasLeader bool
	// absent is when a raft server missing from gossip was first noticed.
	absent map[string]time.Time
	// retry delays probes of members whose cluster port failed the check.
	retry map[string]probeRetry
	// passes counts the leader's reconcile passes (tests wait for them).
	passes atomic.Uint64
}

type probeRetry struct {
	next  time.Time
	delay time.Duration
}

// membershipLoop drives bootstrap_expect and, on the leader, voter
// reconciliation, on every gossip event and on a timer.
func (n *Node) membershipLoop() {
	defer n.bg.Done()
	t := time.NewTicker(n.opts.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		case <-n.gossip.changed:
		}
		now := time.Now()
		if n.cfg.BootstrapExpect > 0 {
			n.bootstrapStep(now)
		} else if n.raft.LastIndex() > 0 {
			n.gossip.setMeta(func(m *meta) { m.State = true })
		}
		if n.IsLeader() {
			for range maxChangesPerPass {
				if !n.reconcileOnce(now) {
					break
				}
			}
			n.recon.passes.Add(1)
		} else {
			n.recon.wasLeader = false
		}
		// Records of members gone this long help nobody any more.
		n.gossip.prune(max(2*n.cfg.ReapAfter, time.Hour))
	}
}

// serverHealth is one raft server as gossip sees it.
type serverHealth struct {
	raft.Server
	healthy bool
	since   time.Time // failed since, when !healthy
}

func quorum(voters int) int { return voters/2 + 1 }

// reconcileOnce makes at most one configuration change towards: every
// alive member in raft, cfg.Voters healthy voters, the rest non-voters,
// members dead past reap_after removed. It reports whether it changed
// anything (so the caller looks again).
func (n *Node) reconcileOnce(now time.Time) bool {
	r := &n.recon
	if !r.wasLeader {
		// Absence noticed in an earlier term says nothing about now.
		r.absent, r.wasLeader = map[string]time.Time{}, true
	}
	if r.retry == nil {
		r.retry = map[string]probeRetry{}
	}
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return false
	}
	prev := cf.Index()
	members := n.gossip.snapshot()
	var (
		servers                       []serverHealth
		inConfig                      = map[string]raft.Server{}
		voters, healthyVoters, failed int
	)
	for _, s := range cf.Configuration().Servers {
		id := string(s.ID)
		inConfig[id] = s
		h := serverHealth{Server: s}
		m, ok := members[id]
		switch {
		case id == n.cfg.NodeID || ok && m.state <= memberlist.StateSuspect:
			h.healthy = true
			delete(r.absent, id)
		case ok:
			h.since = m.since
			delete(r.absent, id)
		default:
			if _, seen := r.absent[id]; !seen {
				r.absent[id] = now
			}
			h.since = r.absent[id]
		}
		if s.Suffrage == raft.Voter {
			voters++
			if h.healthy {
				healthyVoters++
			} else {
				failed++
			}
		}
		servers = append(servers, h)
	}
	slices.SortFunc(servers, func(a, b serverHealth) int { return strings.Compare(string(a.ID), string(b.ID)) })

	// A replica takes the place of a voter that is gone, once it holds
	// the log: until then it could not help commit anything.
	if healthyVoters < n.cfg.Voters {
		for _, s := range servers {
			if s.healthy && s.Suffrage != raft.Voter && n.caughtUp(n.ctx, string(s.ID), string(s.Address)) {
				return n.change("promoting caught-up replica to voter", s.ID, s.Address,
					n.raft.AddVoter(s.ID, s.Address, prev, n.cfg.ApplyTimeout))
			}
		}
	}
	// Alive members that raft does not know, or knows at another address.
	for _, id := range sortedKeys(members) {
		m := members[id]
		if id == n.cfg.NodeID || m.state != memberlist.StateAlive || m.bad != nil || m.meta.Raft == "" || m.meta.Leaving {
			continue
		}
		cur, known := inConfig[id]
		if known && string(cur.Address) == m.meta.Raft {
			continue
		}
		if !n.probe(id, m.meta.Raft, now) {
			continue
		}
		addr := raft.ServerAddress(m.meta.Raft)
		switch {
		case known && sameIncarnation(string(cur.Address), m.meta.Raft):
			// The same incarnation at a new address: it kept its data.
			f := n.raft.AddNonvoter(raft.ServerID(id), addr, prev, n.cfg.ApplyTimeout)
			if cur.Suffrage == raft.Voter {
				f = n.raft.AddVoter(raft.ServerID(id), addr, prev, n.cfg.ApplyTimeout)
			}
			return n.change("moving member to its new address", raft.ServerID(id), addr, f)
		case known:
			// A new incarnation: the member lost its data dir. Its former
			// self goes now, whatever the quorum (it is not coming back);
			// the next pass adds it as a new member.
			return n.change("removing the former incarnation of a member that lost its data", cur.ID, cur.Address,
				n.raft.RemoveServer(cur.ID, prev, n.cfg.ApplyTimeout))
		}
		return n.change("adding member as a non-voter until it catches up", raft.ServerID(id), addr,
			n.raft.AddNonvoter(raft.ServerID(id), addr, prev, n.cfg.ApplyTimeout))
	}
	// Failure-based changes only while this leader's gossip view sees a
	// quorum of voters alive: a leader whose own gossip is cut off must
	// not mistake everyone else for dead.
	if healthyVoters < quorum(voters) {
		return false
	}
	for _, s := range servers {
		if s.healthy || now.Sub(s.since) < n.cfg.ReapAfter {
			continue
		}
		if s.Suffrage == raft.Voter && voters-1 < quorum(n.cfg.Voters) {
			if _, ok := n.gossip.warn.allow("reap " + string(s.ID)); ok {
				n.logger.Warn("not removing dead voter: fewer voters than a quorum of cluster.voters would remain",
					"member", s.ID, "dead_for", now.Sub(s.since).Round(time.Second), "voters", voters, "configured", n.cfg.Voters)
			}
			continue
		}
		// Gossip's view lags: a member it still calls alive may have just
		// died, and one it calls dead may be back. The new configuration
		// takes effect on this leader as soon as it is appended, so if the
		// voters left could not make a quorum, nothing would ever commit
		// again until the very incarnations it names return. Ask them.
		if s.Suffrage == raft.Voter {
			if n.answers(s.Address) {
				continue // it answers on the cluster port: not dead
			}
			if live, left := n.liveVotersWithout(servers, s.ID); live < quorum(left) {
				if _, ok := n.gossip.warn.allow("reap-quorum " + string(s.ID)); ok {
					n.logger.Warn("not removing dead voter: the voters that would remain do not answer as a quorum",
						"member", s.ID, "dead_for", now.Sub(s.since).Round(time.Second), "answering", live, "remaining", left)
				}
				continue
			}
		}
		return n.change(fmt.Sprintf("removing member gone for %s", now.Sub(s.since).Round(time.Millisecond)), s.ID, s.Address,
			n.raft.RemoveServer(s.ID, prev, n.cfg.ApplyTimeout))
	}
	// A voter that came back after its replacement was promoted: hand the
	// surplus vote back, highest id first, never the leader's own.
	if failed == 0 && voters > n.cfg.Voters {
		for i := len(servers) - 1; i >= 0; i-- {
			s := servers[i]
			if s.Suffrage == raft.Voter && string(s.ID) != n.cfg.NodeID {
				return n.change("demoting surplus voter to replica", s.ID, s.Address, n.raft.DemoteVoter(s.ID, prev, n.cfg.ApplyTimeout))
			}
		}
	}
	return false
}

// change waits for a configuration change and logs its outcome.
func (n *Node) change(what string, id raft.ServerID, addr raft.ServerAddress, f raft.IndexFuture) bool {
	err, _ := wait(n.ctx, f)
	if err != nil {
		n.logger.Warn("membership change failed", "change", what, "member", id, "address", addr, "err", err)
		return false
	}
	n.logger.Info("membership: "+what, "member", id, "address", addr, "index", f.Index())
	return true
}

// probe checks that a member's cluster port answers as that member (and so
// that its certificate is accepted, with TLS) before raft counts on it.
// Failures back off per member.
func (n *Node) probe(id, addr string, now time.Time) bool {
	r := &n.recon
	if pr, ok := r.retry[id]; ok && now.Before(pr.next) {
		return false
	}
	ctx, cancel := context.WithTimeout(n.ctx, probeTimeout)
	defer cancel()
	reply, err := n.ping(ctx, addr)
	switch {
	case err != nil:
	case reply.ID != id:
		err = fmt.Errorf("%w: %q", errNotMember, reply.ID)
	case reply.Leaving:
		return false
	}
	if err == nil {
		delete(r.retry, id)
		return true
	}
	pr := r.retry[id]
	pr.delay = min(max(2*pr.delay, time.Second), 30*time.Second)
	pr.next = now.Add(pr.delay)
	r.retry[id] = pr
	n.logger.Warn("not adding gossip member to raft: its cluster port failed the check (wrong TLS certificate, or unreachable raft address?)",
		"member", id, "raft", addr, "retry_in", pr.delay, "err", err)
	return false
}

// answers reports whether the member at addr (its raft address, naming
// its incarnation) answers a ping on the cluster port now.
func (n *Node) answers(addr raft.ServerAddress) bool {
	ctx, cancel := context.WithTimeout(n.ctx, probeTimeout)
	defer cancel()
	_, err := n.ping(ctx, string(addr))
	return err == nil
}

// liveVotersWithout counts the voters of servers other than gone, and how
// many of them answer now (this leader always does).
func (n *Node) liveVotersWithout(servers []serverHealth, gone raft.ServerID) (live, voters int) {
	for _, s := range servers {
		if s.Suffrage != raft.Voter || s.ID == gone {
			continue
		}
		voters++
		if string(s.ID) == n.cfg.NodeID || n.answers(s.Address) {
			live++
		}
	}
	return live, voters
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
