package cluster_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
)

// monitors starts a Monitor on every node, closed before the cluster.
func monitors(t *testing.T, c *clustertest.Cluster) []*cluster.Monitor {
	t.Helper()
	out := make([]*cluster.Monitor, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = cluster.NewMonitor(n.Node, nil)
		t.Cleanup(out[i].Close)
	}
	return out
}

func TestMonitor_Status(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{})
	mons := monitors(t, c)
	leader := c.WaitLeader()
	c.Retry("set", func(ctx context.Context) error {
		return c.Store(leader, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{item("a", "1"), item("b", "22")})
	})
	c.EnsureSame()
	c.Poll("every node ready", func() string {
		for i, m := range mons {
			if ok, why := m.Ready(); !ok {
				return c.Nodes[i].ID + ": " + why
			}
		}
		return ""
	})

	ls := mons[leader].Status(t.Context())
	if ls.Role != cluster.RoleLeader || ls.NodeID != c.Nodes[leader].ID || ls.LeaderID != ls.NodeID {
		t.Fatalf("leader status: role %s id %s leader %s", ls.Role, ls.NodeID, ls.LeaderID)
	}
	if ls.Term == 0 || ls.CommitIndex == 0 || ls.FSMAppliedIndex == 0 || ls.AppliedIndex < ls.FSMAppliedIndex || ls.LastLogIndex < ls.CommitIndex {
		t.Fatalf("leader indexes: %+v", ls)
	}
	if !ls.Ready || ls.LeaderChanges < 1 || ls.LastContactSeconds != nil {
		t.Fatalf("leader: ready %v, leader changes %d, last contact %v", ls.Ready, ls.LeaderChanges, ls.LastContactSeconds)
	}
	if len(ls.Members) != 3 {
		t.Fatalf("members %+v", ls.Members)
	}
	for _, m := range ls.Members {
		if m.Suffrage != "voter" || m.Address == "" {
			t.Fatalf("member %+v", m)
		}
		switch {
		case m.Self:
			if !m.Leader || m.LastContactSeconds == nil || *m.LastContactSeconds != 0 {
				t.Fatalf("leader's own entry %+v", m)
			}
		case m.Heartbeat != cluster.HeartbeatOK:
			t.Fatalf("follower %s heartbeat %q on a healthy cluster", m.ID, m.Heartbeat)
		}
	}
	var keys int64
	for _, s := range ls.Storages {
		if !s.Replicated || s.AppliedIndex == 0 && s.Name == "mem" {
			t.Fatalf("storage %+v", s)
		}
		if s.Name == "mem" {
			keys = s.Keys
		}
	}
	if len(ls.Storages) != 2 || keys != 2 {
		t.Fatalf("storages %+v", ls.Storages)
	}

	f := c.Followers(leader)[0]
	fs := mons[f].Status(t.Context())
	if fs.Role != cluster.RoleFollower || fs.LeaderID != ls.NodeID || fs.LeaderAddress != c.Nodes[leader].Addr {
		t.Fatalf("follower status: role %s leader %s at %s", fs.Role, fs.LeaderID, fs.LeaderAddress)
	}
	if fs.LastContactSeconds == nil || *fs.LastContactSeconds < 0 {
		t.Fatalf("follower last contact %v", fs.LastContactSeconds)
	}
	for _, m := range fs.Members {
		if m.Leader && m.LastContactSeconds == nil {
			t.Fatalf("follower does not report its contact with the leader: %+v", m)
		}
		if m.Heartbeat != "" {
			t.Fatalf("a follower reports heartbeats: %+v", m)
		}
	}

	// The leader notices a member it cannot reach.
	c.Isolate(f)
	c.Poll("leader sees failing heartbeats", func() string {
		for _, m := range mons[leader].Status(t.Context()).Members {
			if m.ID == c.Nodes[f].ID {
				if m.Heartbeat == cluster.HeartbeatFailing && m.LastContactSeconds != nil {
					return ""
				}
				return "heartbeat " + m.Heartbeat
			}
		}
		return "member missing"
	})
	c.Heal(f)
	c.Poll("heartbeats resume", func() string {
		if mons[leader].Status(t.Context()).Role != cluster.RoleLeader {
			return "" // leadership moved; resumption is then moot
		}
		for _, m := range mons[leader].Status(t.Context()).Members {
			if m.ID == c.Nodes[f].ID && m.Heartbeat != cluster.HeartbeatOK {
				return "heartbeat " + m.Heartbeat
			}
		}
		return ""
	})
}

// A node without a quorum has no leader and is not ready.
func TestMonitor_NotReadyWithoutLeader(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{})
	mons := monitors(t, c)
	leader := c.WaitLeader()
	c.Poll("ready", func() string {
		if ok, why := mons[leader].Ready(); !ok {
			return why
		}
		return ""
	})
	survivor := c.Followers(leader)[0]
	for i := range c.Nodes {
		if i != survivor {
			c.Kill(i)
		}
	}
	c.Poll("survivor not ready", func() string {
		if ok, _ := mons[survivor].Ready(); ok {
			return "still ready"
		}
		return ""
	})
	if ok, why := mons[survivor].Ready(); ok || why == "" {
		t.Fatalf("Ready = %v, %q", ok, why)
	}
	if st := mons[survivor].Status(t.Context()); st.Ready || st.ReadyReason == "" {
		t.Fatalf("status ready %v reason %q", st.Ready, st.ReadyReason)
	}
}

// With gossip, members carry their gossip state and advertised RPC address.
func TestMonitor_StatusWithGossip(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Gossip: true})
	mons := monitors(t, c)
	c.WaitLeader()
	// After bootstrap, which updates gossip metadata too: memberlist's
	// UpdateNode is not safe for concurrent calls.
	c.EnsureSame()
	c.Nodes[0].Node.SetRPCAddr("tcp://127.0.0.1:6001")
	c.Poll("gossip in the status", func() string {
		st := mons[1].Status(t.Context())
		if len(st.Members) != 3 {
			return fmt.Sprintf("%d members", len(st.Members))
		}
		for _, m := range st.Members {
			if m.Gossip != "alive" || m.Suffrage != "voter" {
				return fmt.Sprintf("member %s: gossip %q suffrage %q", m.ID, m.Gossip, m.Suffrage)
			}
			if m.ID == c.Nodes[0].ID && m.RPCAddress != "tcp://127.0.0.1:6001" {
				return "rpc address " + m.RPCAddress
			}
		}
		return ""
	})
}
