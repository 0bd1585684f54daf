package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/kvnode/kvnode/client"
)

// methodStatus is kvnode's admin call behind `kvnode status`.
const methodStatus = "kvnode.Status"

// NodeStatus is the part of cluster.Status the harness reads. gob matches
// fields by name, so this mirror decodes the server's reply without the
// harness importing the cluster package.
type NodeStatus struct {
	NodeID          string
	Role            string
	LeaderID        string
	Term            uint64
	CommitIndex     uint64
	FSMAppliedIndex uint64
	Ready           bool
	Members         []MemberSummary
	Storages        []StorageSummary
}

// MemberSummary is one member of the raft configuration as a node sees it.
type MemberSummary struct {
	ID       string
	Suffrage string
	Leader   bool
	Gossip   string
}

// StorageSummary is one storage's size on one node, and for a bounded
// storage the memory limit in force (0: none yet, or unbounded).
type StorageSummary struct {
	Name         string
	Replicated   bool
	Keys         int64
	Bytes        int64
	MaxMemory    int64
	AppliedIndex uint64
}

// GetStatus asks a node for its view of the cluster (timeout 2 s). Servers
// without the admin service (older kvnode) answer with a ServerError.
func GetStatus(ctx context.Context, addr string) (NodeStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var st NodeStatus
	cl, err := client.Dial(ctx, addr, client.WithPoolSize(1))
	if err != nil {
		return st, err // names the address
	}
	defer func() { _ = cl.Close() }()
	if err := cl.Call(ctx, methodStatus, nil, &st); err != nil {
		return st, fmt.Errorf("status of %s: %w", addr, err)
	}
	return st, nil
}

// leaderByStatus names the leader from the nodes' own status: the node
// that reports itself leader in the highest term. ok is false when no node
// answers the status call (an older kvnode) or none is leader.
func leaderByStatus(ctx context.Context, c Cluster) (string, bool, error) {
	var best string
	var term uint64
	answered := false
	for _, n := range c.Nodes() {
		st, err := GetStatus(ctx, c.Addr(n))
		if err != nil {
			continue
		}
		answered = true
		if st.Role == "leader" && (best == "" || st.Term > term) {
			best, term = n, st.Term
		}
	}
	if best == "" {
		return "", answered, ErrNoLeader
	}
	return best, true, nil
}

// isVoter asks the leader whether node is a voter of the raft
// configuration; ok is false when no leader answers.
func isVoter(ctx context.Context, c Cluster, node string) (voter, ok bool) {
	l, _, err := leaderByStatus(ctx, c)
	if err != nil {
		return false, false
	}
	st, err := GetStatus(ctx, c.Addr(l))
	if err != nil {
		return false, false
	}
	for _, m := range st.Members {
		if m.ID == node {
			return m.Suffrage == "voter", true
		}
	}
	return false, true
}

// waitVoter polls until node's voter status is want, at most d; it
// reports how long that took and whether it happened.
func waitVoter(ctx context.Context, c Cluster, node string, want bool, d time.Duration) (time.Duration, bool) {
	start := time.Now()
	for i := 0; i < 1000 && time.Since(start) < d; i++ {
		if v, ok := isVoter(ctx, c, node); ok && v == want {
			return time.Since(start), true
		}
		if !sleepCtx(ctx, 500*time.Millisecond) {
			break
		}
	}
	return time.Since(start), false
}
