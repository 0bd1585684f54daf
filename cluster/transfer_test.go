package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
)

// A leadership transfer refuses new proposals before appending them, so
// writes that meet it were not applied: they must be retried or reported
// as "no leader", never as "outcome unknown". Writes already in flight when
// the leader steps down are resolved from the log once the new leader's
// commit index reaches them.
func TestLeadershipTransferIsNotOutcomeUnknown(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Storages: map[string]string{"mem": "memory"}})
	c.WaitLeader()

	const writers, transfers = 6, 4
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		unknown []error
		acked   = map[string]int{} // key -> node that acknowledged it
	)
	for w := range writers {
		wg.Go(func() {
			node := w % 3
			deadline := time.Now().Add(30 * time.Second)
			for i := 0; i < 5000 && ctx.Err() == nil && time.Now().Before(deadline); i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := c.Store(node, "mem", cluster.ReadLocal).Set(wctx, []drivers.Item{item(key, "v")})
				cancel()
				mu.Lock()
				switch {
				case err == nil:
					acked[key] = node
				case errors.Is(err, cluster.ErrOutcomeUnknown):
					unknown = append(unknown, fmt.Errorf("%s via node%d: %w", key, node, err))
				}
				mu.Unlock()
			}
		})
	}
	for range transfers {
		leader := c.WaitLeader()
		if err := c.Nodes[leader].Node.Raft().LeadershipTransfer().Error(); err != nil {
			t.Logf("transfer from node%d: %v", leader, err)
		}
		c.Poll("leadership moved", func() string {
			if c.Nodes[leader].Node.IsLeader() {
				return "node still leads"
			}
			return ""
		})
	}
	stop()
	wg.Wait()
	if len(unknown) > 0 {
		t.Errorf("%d writes reported outcome unknown across %d leadership transfers, e.g. %v", len(unknown), transfers, unknown[0])
	}
	c.EnsureSame()
	missing := 0
	for key := range acked {
		if got := mget(t, c.Store(0, "mem", cluster.ReadLocal), key); got[key] != "v" {
			missing++
		}
	}
	if missing > 0 || len(acked) == 0 {
		t.Fatalf("%d of %d acknowledged writes missing", missing, len(acked))
	}
}
