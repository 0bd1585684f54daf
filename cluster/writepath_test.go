package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
)

// A write through a follower is acknowledged once committed, before the
// follower applies it; every later read on that follower, from any
// connection, waits until it has: read-your-writes on the node holds. The
// store meanwhile reports its local reads not ready (the RPC server then
// serves them on a worker, not on the connection's reader).
func TestWritePath_FollowerReadsItsAcknowledgedWritesFromAnyConnection(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Storages: map[string]string{"mem": "memory"}})
	leader := c.WaitLeader()
	f := c.Followers(leader)[0]
	c.Retry("set v1", func(ctx context.Context) error {
		return c.Store(f, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{item("k", "v1")})
	})
	c.EnsureSame()
	ready := func(level cluster.Consistency) bool {
		return c.Store(f, "mem", level).(drivers.ReadyReporter).ReadsReady()
	}
	c.Poll("local reads on the caught-up follower", func() string {
		if ready(cluster.ReadLocal) {
			return ""
		}
		return "not ready"
	})
	if ready(cluster.ReadLinearizable) {
		t.Error("a linearizable read reports ready: it must ask the leader")
	}

	// The follower cannot apply anything now; the write commits on the
	// leader and the other follower, and is acknowledged.
	release := c.Stall(f, "mem")
	defer release()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	err := c.Store(f, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{item("k", "v2")})
	cancel()
	if err != nil {
		t.Fatalf("write through the follower: %v", err)
	}
	if ready(cluster.ReadLocal) {
		t.Error("a local read reports ready before the follower applied a write it acknowledged")
	}
	// Another connection (another caller of the node's store) reads.
	read := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		items, err := c.Store(f, "mem", cluster.ReadLocal).MGet(ctx, []string{"k"})
		switch {
		case err != nil:
			read <- "error: " + err.Error()
		case len(items) == 0:
			read <- "absent"
		default:
			read <- string(items[0].Value)
		}
	}()
	select {
	case got := <-read:
		t.Fatalf("a read after the acknowledged write returned %q before the follower applied it", got)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	if got := <-read; got != "v2" {
		t.Fatalf("read after the write: %q, want v2", got)
	}
	if !ready(cluster.ReadLocal) {
		t.Error("local reads not ready once the follower applied what it acknowledged")
	}
}

// coalescingCluster starts a cluster with a "mem" storage and waits until
// its leader may put several writes in one entry (every member reported a
// log version that can apply batches).
func coalescingCluster(t *testing.T) (*clustertest.Cluster, int, *cluster.Node) {
	t.Helper()
	c := clustertest.New(t, clustertest.Options{Storages: map[string]string{"mem": "memory"}})
	leader := c.WaitLeader()
	n := c.Nodes[leader].Node
	c.Poll("every member reported its version", func() string {
		if !cluster.BatchesOK(n) {
			return "not yet"
		}
		return ""
	})
	return c, leader, n
}

// Concurrent writes on a leader share log entries, each with its own
// result (a refused write fails alone); while a member has not reported a
// log version that can apply batches, each write is its own entry.
func TestWritePath_LeaderCoalescesConcurrentWritesOnlyWhenEveryMemberCan(t *testing.T) {
	c, leader, n := coalescingCluster(t)
	const writers = 32
	// burst writes concurrently on the leader and returns how many log
	// entries they took.
	burst := func(prefix string) uint64 {
		before := n.FSM().AppliedIndex()
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				items := []drivers.Item{item(fmt.Sprintf("%s%d", prefix, w), "v")}
				if w == 7 {
					items = append(items, drivers.Item{Key: " "}) // refused, alone
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := c.Store(leader, "mem", cluster.ReadLocal).Set(ctx, items); (w == 7) != (err != nil) {
					t.Errorf("write %d: %v", w, err)
				}
			})
		}
		wg.Wait()
		for w := range writers {
			if got := readLocal(c, leader, "mem", fmt.Sprintf("%s%d", prefix, w)); (w == 7) != (got == "") {
				t.Fatalf("%s%d: %q", prefix, w, got)
			}
		}
		return n.FSM().AppliedIndex() - before
	}
	if entries := burst("batched"); entries >= writers {
		t.Fatalf("%d concurrent writes took %d entries: not coalesced", writers, entries)
	}
	// As a node older than batches reports; the leader asks again every
	// 500ms (and learns the truth), so a burst that saw the version change
	// back is run again.
	for attempt := 0; ; attempt++ {
		for _, f := range c.Followers(leader) {
			cluster.SetPeerVersion(n, c.Nodes[f].Node.Addr(), 1)
		}
		if cluster.BatchesOK(n) {
			t.Fatal("batches on with a member that cannot apply them")
		}
		entries := burst(fmt.Sprintf("single%d-", attempt))
		if cluster.BatchesOK(n) && attempt < 5 {
			continue
		}
		if entries < writers {
			t.Fatalf("%d writes took %d entries while a member cannot apply batches", writers, entries)
		}
		break
	}
	c.EnsureSame()
}

// A node that restarts does not know any more which writes it acknowledged,
// but they are all committed: its reads wait until it has caught up with
// the leader's commit index, so a client that wrote there before the
// restart reads its write there after it (a memory storage starts empty).
func TestWritePath_ReadYourWritesAcrossARestart(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Storages: map[string]string{"mem": "memory"}})
	leader := c.WaitLeader()
	f := c.Followers(leader)[0]
	for i := range 50 {
		c.Retry("write", func(ctx context.Context) error {
			return c.Store(f, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{item(fmt.Sprintf("k%d", i), "v")})
		})
	}
	c.Kill(f)
	c.Restart(f)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	items, err := c.Store(f, "mem", cluster.ReadLocal).MGet(ctx, []string{"k49"})
	if err != nil || len(items) != 1 {
		t.Fatalf("first read after the restart: %v, %v (the write acknowledged before it is missing)", items, err)
	}
}

// With raft.log_store wal the cluster works as with boltdb: writes, a
// node killed and restarted catches up from its log.
func TestWritePath_RaftWALLogStore(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Tune: func(cfg *cluster.Config) { cfg.Raft.LogStore = cluster.LogStoreWAL }})
	leader := c.WaitLeader()
	f := c.Followers(leader)[0]
	c.Fill(leader, 60, "a")
	c.Kill(f)
	c.Fill(leader, 60, "b")
	c.Restart(f)
	c.EnsureSame()
	if got := readLocal(c, f, "bolt", "b59"); got == "" {
		t.Fatal("the restarted node did not catch up")
	}
}

// A leader that dies has its connections closed by its kernel: the
// followers notice through their Watch calls and stand for election
// without waiting out the heartbeat timeout; a new leader takes writes.
func TestWritePath_FollowersNoticeADeadLeaderByItsClosedConnections(t *testing.T) {
	logger, logs := cluster.NewLogBook()
	c := clustertest.New(t, clustertest.Options{Storages: map[string]string{"mem": "memory"}, Logger: logger,
		// A heartbeat timeout long enough that only the watch can explain a
		// quick election.
		Tune: func(cfg *cluster.Config) {
			cfg.Raft.HeartbeatTimeout, cfg.Raft.ElectionTimeout = 2*time.Second, 2*time.Second
		}})
	leader := c.WaitLeader()
	c.Retry("write", func(ctx context.Context) error {
		return c.Store(leader, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{item("k", "v")})
	})
	c.Poll("both followers watch the leader", func() string {
		if w := cluster.Watchers(c.Nodes[leader].Node); w != 2 {
			return fmt.Sprintf("%d watching", w)
		}
		return ""
	})
	c.Kill(leader)
	c.Poll("a follower notices the closed connection", func() string {
		if logs.Find("leader's connection closed: standing for election") == "" {
			return "not yet"
		}
		return ""
	})
	next := c.WaitLeader(leader)
	c.Retry("write after failover", func(ctx context.Context) error {
		return c.Store(next, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{item("k", "v2")})
	})
}

// Writes that share log entries (coalesced on the leader, forwarded in
// batches by followers) keep the promises a client sees one write at a
// time: once a Set is acknowledged by any node, a linearizable read on any
// other node and a local read on the node that acknowledged it return that
// value (each writer is its key's only writer, so nothing later can
// replace it), and every node ends with the same state.
func TestWritePath_CoalescedWritesAreLinearizableOnEveryNode(t *testing.T) {
	c, _, n := coalescingCluster(t)
	const writers, rounds = 12, 25
	before := n.FSM().AppliedIndex()
	deadline := time.Now().Add(time.Minute)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			key := fmt.Sprintf("w%d", w)
			for r := 0; r < rounds && time.Now().Before(deadline); r++ {
				at := (w + r) % len(c.Nodes) // leader and followers in turn
				other := (at + 1) % len(c.Nodes)
				want := fmt.Sprintf("%d", r)
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				err := c.Store(at, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{item(key, want)})
				if err != nil {
					cancel()
					t.Errorf("%s=%s through node %d: %v", key, want, at, err)
					return
				}
				for _, read := range []struct {
					node  int
					level cluster.Consistency
					name  string
				}{{other, cluster.ReadLinearizable, "linearizable"}, {at, cluster.ReadLocal, "local"}} {
					items, err := c.Store(read.node, "mem", read.level).MGet(ctx, []string{key})
					switch {
					case err != nil:
						t.Errorf("read %s on node %d after its write was acknowledged: %v", key, read.node, err)
					case len(items) != 1 || string(items[0].Value) != want:
						t.Errorf("%s read of %s on node %d after %s was acknowledged by node %d: %v",
							read.name, key, read.node, want, at, items)
					}
				}
				cancel()
				if t.Failed() {
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	entries := n.FSM().AppliedIndex() - before
	t.Logf("%d writes took %d log entries", writers*rounds, entries)
	if entries >= writers*rounds {
		t.Logf("%d writes took %d entries: the writes were not coalesced this run", writers*rounds, entries)
	}
	c.EnsureSame()
}
