package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
)

// A follower learns the commit index from the leader's replication and can
// apply a write before the leader's own FSM does. A linearizable read on
// the leader that starts after a linearizable read on that follower
// returned the new value must not return the old one: the read index is
// raft's commit index, and the leader serves once its FSM has reached it.
func TestReadIndex_LeaderNeverServesBelowWhatAFollowerServed(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Storages: map[string]string{"mem": "memory"}})
	leader := c.WaitLeader()
	f := c.Followers(leader)[0]
	c.Retry("set v1", func(ctx context.Context) error {
		return c.Store(leader, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{item("k", "v1")})
	})
	c.EnsureSame()
	// The leader has proved its term to linearizable reads before the stall.
	if got := mget(t, c.Store(f, "mem", cluster.ReadLinearizable), "k")["k"]; got != "v1" {
		t.Fatalf("linearizable read before the stall: %q", got)
	}

	release := c.Stall(leader, "mem")
	defer release()
	write := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		write <- c.Store(f, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{item("k", "v2")})
	}()
	// The follower applies v2 from the commit index the leader sends it.
	c.Poll("follower applies v2", func() string {
		items, err := c.Nodes[f].Engines["mem"].MGet(time.Now().UnixNano(), []string{"k"})
		if err != nil || len(items) != 1 || string(items[0].Value) != "v2" {
			return "not yet"
		}
		return ""
	})
	r1 := linRead(c, f)
	select {
	case got := <-r1:
		// Served while the leader's FSM lags: then whatever the leader
		// serves from now on must not be older.
		if got != "v2" {
			t.Fatalf("linearizable read on the follower: %q, want v2", got)
		}
		select {
		case got := <-linRead(c, leader):
			t.Fatalf("linearizable read on the leader after the follower served v2: %q before the leader applied v2", got)
		case <-time.After(300 * time.Millisecond):
		}
	case <-time.After(300 * time.Millisecond):
		// The leader waits for its own FSM before handing out the index.
	}
	release()
	if got := <-r1; got != "v2" {
		t.Fatalf("linearizable read on the follower: %q, want v2", got)
	}
	if got := <-linRead(c, leader); got != "v2" {
		t.Fatalf("linearizable read on the leader: %q, want v2", got)
	}
	if err := <-write; err != nil {
		t.Fatalf("the write: %v", err)
	}
}

// unsweptCluster starts a cluster with a "mem" storage whose expired keys
// stay in the engines (no sweep), hidden by time alone.
func unsweptCluster(t *testing.T) *clustertest.Cluster {
	t.Helper()
	return clustertest.New(t, clustertest.Options{
		Storages: map[string]string{"mem": "memory"},
		Tune:     func(cfg *cluster.Config) { cfg.SweepInterval = time.Hour },
	})
}

// ttlItem is k=v expiring at deadline, as the RPC layer decodes it.
func ttlItem(k, v string, deadline time.Time) drivers.Item {
	it := item(k, v)
	it.Timeout, it.Deadline = deadline.UTC().Format(time.RFC3339Nano), deadline.UnixNano()
	return it
}

// Linearizable reads judge expiry by the cluster's replicated clock, not by
// the clock of the node that serves them: a key one read saw expire never
// reappears, not on a node whose clock is behind, and not after that node
// becomes leader.
func TestReadIndex_ExpiryNeverGoesBackUnderClockSkew(t *testing.T) {
	c := unsweptCluster(t)
	leader := c.WaitLeader()
	slow := c.Followers(leader)[0]
	c.SetClockOffset(slow, -5*time.Second)

	deadline := time.Now().Add(time.Second).UTC()
	it := ttlItem("k", "v", deadline)
	c.Retry("set with ttl", func(ctx context.Context) error {
		return c.Store(leader, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{it})
	})
	c.Poll("deadline passes", func() string {
		if time.Now().Before(deadline.Add(100 * time.Millisecond)) {
			return "not yet"
		}
		return ""
	})
	absent := func(node int, when string) {
		t.Helper()
		if got, ok := mget(t, c.Store(node, "mem", cluster.ReadLinearizable), "k")["k"]; ok {
			t.Fatalf("%s: linearizable read on node%d returned %q after a read saw it expire", when, node, got)
		}
	}
	absent(leader, "on the leader")
	absent(slow, "on a follower 5s behind")

	c.Poll("the slow node takes over", func() string {
		if l := c.WaitLeader(); l != slow {
			err := c.Nodes[l].Node.Raft().LeadershipTransferToServer(
				raftID(c.Nodes[slow].ID), raftAddr(c.Nodes[slow].Node.Addr())).Error()
			return fmt.Sprintf("node%d leads (transfer: %v)", l, err)
		}
		return ""
	})
	for _, n := range c.Live() {
		absent(n.Index, "after the slow node took over")
	}
}

// Local reads judge expiry by the node's clock, but a clock that steps
// back (here a skew that ends) does not bring back, on that node, a key a
// read there already found expired.
func TestReadIndex_LocalExpirySeenStaysSeenWhenTheClockStepsBack(t *testing.T) {
	c := unsweptCluster(t)
	leader := c.WaitLeader()
	f := c.Followers(leader)[0]
	deadline := time.Now().Add(time.Minute).UTC()
	it := ttlItem("k", "v", deadline)
	c.Retry("set with ttl", func(ctx context.Context) error {
		return c.Store(f, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{it})
	})
	if _, ok := mget(t, c.Store(f, "mem", cluster.ReadLocal), "k")["k"]; !ok {
		t.Fatal("the acknowledging node does not read its write")
	}
	c.SetClockOffset(f, 2*time.Minute)
	if got, ok := mget(t, c.Store(f, "mem", cluster.ReadLocal), "k")["k"]; ok {
		t.Fatalf("a node a minute past the deadline by its clock reads %q", got)
	}
	c.SetClockOffset(f, 0)
	if got, ok := mget(t, c.Store(f, "mem", cluster.ReadLocal), "k")["k"]; ok {
		t.Fatalf("after the node's clock stepped back, it reads %q again after a read there saw it expire", got)
	}
}

// linRead starts a linearizable read of "k" on node i and returns where
// its value ("absent", or "error: ...") lands.
func linRead(c *clustertest.Cluster, i int) <-chan string {
	out := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		items, err := c.Store(i, "mem", cluster.ReadLinearizable).MGet(ctx, []string{"k"})
		switch {
		case err != nil:
			out <- "error: " + err.Error()
		case len(items) == 0:
			out <- "absent"
		default:
			out <- string(items[0].Value)
		}
	}()
	return out
}

func raftID(id string) raft.ServerID       { return raft.ServerID(id) }
func raftAddr(a string) raft.ServerAddress { return raft.ServerAddress(a) }
