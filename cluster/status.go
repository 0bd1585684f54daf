package cluster

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
)

// Roles a Status reports. Standalone is a kvnode without a cluster section.
const (
	RoleLeader     = "leader"
	RoleFollower   = "follower"
	RoleCandidate  = "candidate"
	RoleShutdown   = "shutdown"
	RoleStandalone = "standalone"
)

// Heartbeat states of a member, as the leader sees it.
const (
	// HeartbeatOK: the leader's latest heartbeat to the member succeeded,
	// so the member was in contact within one heartbeat interval.
	HeartbeatOK = "ok"
	// HeartbeatFailing: heartbeats to the member fail; LastContact says
	// since when.
	HeartbeatFailing = "failing"
)

// Status is one node's view of itself and of the cluster: what
// `kvnode status` prints. Field names are the JSON of `kvnode status --json`.
type Status struct {
	NodeID  string `json:"node_id"`
	Address string `json:"address,omitempty"`
	// Incarnation changes when a node restarts without its data dir: it is
	// then a new member (empty for a node older than incarnations).
	Incarnation   string `json:"incarnation,omitempty"`
	Role          string `json:"role"`
	LeaderID      string `json:"leader_id"`
	LeaderAddress string `json:"leader_address"`
	Term          uint64 `json:"term"`
	// CommitIndex is the highest log entry this node knows committed.
	CommitIndex uint64 `json:"commit_index"`
	// AppliedIndex is raft's applied index (no-ops and configuration
	// entries included); FSMAppliedIndex the last entry the state machine
	// applied, which is what reads see.
	AppliedIndex    uint64 `json:"applied_index"`
	FSMAppliedIndex uint64 `json:"fsm_applied_index"`
	LastLogIndex    uint64 `json:"last_log_index"`
	// LastContactSeconds is, on a follower, how long ago it last heard
	// from the leader; null on the leader and when never.
	LastContactSeconds *float64 `json:"last_contact_seconds"`
	// Ready is what /ready and `kvnode health --ready` answer.
	Ready       bool   `json:"ready"`
	ReadyReason string `json:"ready_reason,omitempty"`
	// LeaderChanges counts the leaders this node has seen since it started.
	LeaderChanges uint64          `json:"leader_changes"`
	Members       []MemberStatus  `json:"members"`
	Storages      []StorageStatus `json:"storages"`
}

// MemberStatus is one member of the raft configuration (or of gossip only).
type MemberStatus struct {
	ID          string `json:"id"`
	Address     string `json:"address"`
	Incarnation string `json:"incarnation,omitempty"`
	// Suffrage is voter, nonvoter or staging; "none" for a node that
	// gossip knows but raft does not (yet).
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
	Self     bool   `json:"self"`
	// Gossip is the member's gossip state (alive, dead, left, or "not
	// seen"), empty when this node runs without gossip.
	Gossip string `json:"gossip,omitempty"`
	// RPCAddress is the kv RPC address the member advertises in gossip.
	RPCAddress string `json:"rpc_address,omitempty"`
	// Heartbeat is the leader's view (HeartbeatOK, HeartbeatFailing); only
	// the leader reports it, for the other members.
	Heartbeat string `json:"heartbeat,omitempty"`
	// LastContactSeconds is how long ago this node last heard from the
	// member, when it knows: 0 for itself, the leader's last contact on a
	// follower, and on the leader for members whose heartbeats fail. null
	// otherwise (a member in heartbeat contact with the leader has been
	// heard from within one heartbeat interval).
	LastContactSeconds *float64 `json:"last_contact_seconds"`
}

// StorageStatus summarises one storage.
type StorageStatus struct {
	Name string `json:"name"`
	// Driver is filled in by the caller that knows the configuration.
	Driver     string `json:"driver,omitempty"`
	Replicated bool   `json:"replicated"`
	Keys       int64  `json:"keys"`
	Bytes      int64  `json:"bytes"`
	// Usage is what max_memory is compared with: keys, values and a
	// per-key overhead (drivers.EntryUsage); 0 where unknown.
	Usage int64 `json:"usage,omitempty"`
	// MaxMemory and MaxKeys are the limits in force (0: none), Eviction
	// their policy; Evicted and Rejected count, since this node started,
	// the keys its engine evicted and the writes it refused as full.
	MaxMemory int64  `json:"max_memory,omitempty"`
	MaxKeys   int64  `json:"max_keys,omitempty"`
	Eviction  string `json:"eviction,omitempty"`
	Evicted   int64  `json:"evicted,omitempty"`
	Rejected  int64  `json:"rejected,omitempty"`
	// AppliedIndex is the engine's own applied index (replicated only).
	AppliedIndex uint64 `json:"applied_index,omitempty"`
}

// StorageStatusOf fills a StorageStatus's sizes and limits from an
// engine's Stats.
func StorageStatusOf(name string, s drivers.Stats) StorageStatus {
	st := StorageStatus{Name: name, Keys: s.Keys, Bytes: s.Bytes, Usage: s.Usage, Evicted: s.Evicted, Rejected: s.Rejected}
	if s.Limits.Bounded() {
		st.MaxMemory, st.MaxKeys, st.Eviction = s.Limits.MaxBytes, s.Limits.MaxKeys, s.Limits.Policy.String()
	}
	return st
}

// statusTimeout bounds the raft calls of one Status.
const statusTimeout = 5 * time.Second

// Status reports this node's view. It never fails: what cannot be learnt
// in time (the configuration while raft is busy) is left out.
func (m *Monitor) Status(ctx context.Context) Status {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	n, r := m.n, m.n.raft
	st := Status{
		NodeID:          n.ID(),
		Address:         DialAddr(n.Addr()),
		Incarnation:     n.Incarnation(),
		Role:            Role(r.State()),
		Term:            r.CurrentTerm(),
		CommitIndex:     r.CommitIndex(),
		AppliedIndex:    r.AppliedIndex(),
		FSMAppliedIndex: n.fsm.AppliedIndex(),
		LastLogIndex:    r.LastIndex(),
		LeaderChanges:   m.LeaderChanges(),
	}
	st.LeaderID, st.LeaderAddress = n.Leader()
	st.LeaderAddress = DialAddr(st.LeaderAddress)
	st.Ready, st.ReadyReason = m.Ready()
	now := time.Now()
	if st.Role != RoleLeader {
		if lc := r.LastContact(); !lc.IsZero() {
			st.LastContactSeconds = seconds(now.Sub(lc))
		}
	}
	st.Members = m.members(ctx, st, now)
	for _, name := range n.fsm.Names() {
		e, _ := n.fsm.Engine(name)
		s := StorageStatusOf(name, e.Stats())
		s.Replicated, s.AppliedIndex = true, e.AppliedIndex()
		st.Storages = append(st.Storages, s)
	}
	return st
}

// members lists the raft configuration with what this node knows of each
// member's contact, then gossip-only members.
func (m *Monitor) members(ctx context.Context, st Status, now time.Time) []MemberStatus {
	var out []MemberStatus
	f := m.n.raft.GetConfiguration()
	if err, done := wait(ctx, f); done && err == nil {
		failing := m.failingSince()
		for _, s := range f.Configuration().Servers {
			addr, inc := splitAddr(string(s.Address))
			ms := MemberStatus{
				ID:          string(s.ID),
				Address:     addr,
				Incarnation: inc,
				Suffrage:    strings.ToLower(s.Suffrage.String()),
				Leader:      string(s.ID) == st.LeaderID,
				Self:        string(s.ID) == st.NodeID,
			}
			switch {
			case ms.Self:
				ms.LastContactSeconds = seconds(0)
			case ms.Leader:
				ms.LastContactSeconds = st.LastContactSeconds
			case st.Role == RoleLeader:
				if since, bad := failing[s.ID]; bad {
					ms.Heartbeat = HeartbeatFailing
					if !since.IsZero() {
						ms.LastContactSeconds = seconds(now.Sub(since))
					}
				} else {
					ms.Heartbeat = HeartbeatOK
				}
			}
			out = append(out, ms)
		}
	}
	return m.withGossip(out)
}

// Role names a raft state as Status reports it.
func Role(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return RoleLeader
	case raft.Follower:
		return RoleFollower
	case raft.Candidate:
		return RoleCandidate
	default:
		return RoleShutdown
	}
}

func seconds(d time.Duration) *float64 {
	s := d.Seconds()
	return &s
}
