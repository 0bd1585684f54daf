package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/drivers"
)

// TestLog_BoundedInBytes writes large entries, far fewer than raft's
// snapshot_threshold (8192) but many times the byte bound of a small
// storage's log: every node snapshots and compacts its log by itself,
// without waiting for snapshot_interval (two minutes).
func TestLog_BoundedInBytes(t *testing.T) {
	w := &boundWatch{}
	c := boundedCluster(t, drivers.Limits{MaxBytes: 2 << 20, Policy: drivers.PolicyLRU}, w)
	leader := c.WaitLeader()
	s := c.Store(leader, "mem", cluster.Local)
	val := bytes.Repeat([]byte("x"), 100<<10)
	for i := range 200 { // 20 MiB of log, the bound is 8 MiB
		c.Retry("large write", func(ctx context.Context) error {
			return s.Set(ctx, []drivers.Item{{Key: fmt.Sprintf("big:%d", i), Value: val}})
		})
	}
	c.Poll("logs compacted", func() string {
		for _, n := range c.Live() {
			st := n.Node.Raft().Stats()
			snap, _ := strconv.ParseUint(st["last_snapshot_index"], 10, 64)
			last, _ := strconv.ParseUint(st["last_log_index"], 10, 64)
			first, err := cluster.FirstLogIndex(n.Node)
			if err != nil {
				return err.Error()
			}
			if snap == 0 || last-first > 200 {
				return fmt.Sprintf("%s: snapshot at %d, log %d..%d", n.ID, snap, first, last)
			}
		}
		return ""
	})
	c.EnsureSame()
	w.verify(t)
}
