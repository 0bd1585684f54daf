package harness

import (
	"context"
	"testing"
	"time"

	"github.com/kvnode/kvnode/client"
)

// ttlVisible reads key from node's storage and reports whether it is there.
func ttlVisible(t *testing.T, c Cluster, node, storage, key string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, c.Addr(node), client.WithPoolSize(1))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cl.Close() }()
	got, err := cl.MGet(ctx, storage, key)
	if err != nil {
		t.Fatalf("read %s on %s: %v", key, node, err)
	}
	_, ok := got[key]
	return ok
}

// The skew nemesis's clock failpoint reaches the clock kvnode judges
// expiry by: on a local storage, which reads by the serving node's own
// clock, a node set 20 s ahead hides a key that expires in 10 s while the
// others serve it. (Linearizable reads may judge by another clock, and
// a node may refuse to let its clock go back once cleared: neither is
// asserted here.) Runs on a failpoint build (docker: KVNODE_FP_IMAGE;
// else local, built here).
func TestClockFailpointMovesExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := writableCluster(t, true)
	ctx := t.Context()
	cl, err := client.Dial(ctx, c.Addr("node1"), client.WithPoolSize(1))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cl.Close() }()
	item := client.Item{Key: "skewed", Value: []byte("v")}.WithExpiry(time.Now().Add(10 * time.Second))
	if err := cl.Set(ctx, "memory_local", item); err != nil {
		t.Fatal(err)
	}
	// A local read may lag the write on other nodes: poll until all serve it.
	for _, n := range c.Nodes() {
		for i := 0; !ttlVisible(t, c, n, "memory_local", "skewed"); i++ {
			if i == 50 {
				t.Fatalf("%s does not serve the key before any skew", n)
			}
			sleepCtx(ctx, 100*time.Millisecond)
		}
	}
	// Skew a follower: a leader ahead would expire the key for everyone.
	leader, err := WaitLeader(ctx, c, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	skewed := "node1"
	if leader == skewed {
		skewed = "node2"
	}
	if err := c.Failpoint(ctx, skewed, FailpointClock, "offset(20s)"); err != nil {
		t.Fatal(err)
	}
	if ttlVisible(t, c, skewed, "memory_local", "skewed") {
		t.Fatalf("%s, 20 s ahead, still serves a key that expires in 10 s", skewed)
	}
	if !ttlVisible(t, c, leader, "memory_local", "skewed") {
		t.Fatalf("%s, not skewed, hides the key", leader)
	}
	if err := c.Failpoint(ctx, skewed, FailpointClock, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.Failpoint(ctx, skewed, "no-such-failpoint", "sleep(1ms)"); err == nil {
		t.Fatal("an unknown failpoint was accepted")
	}
}
