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
// without waiting for snapshot_interval (two minutes), down to what
// logsize.go promises: about 1.5 times the bound (8 MiB here), trailing
// entries plus those since the last snapshot. The bound is in bytes; how
// many entries it takes depends on how many small entries (evictions,
// clock ticks) share the log, so the test measures bytes.
func TestLog_BoundedInBytes(t *testing.T) {
	w := &boundWatch{}
	c := boundedCluster(t, drivers.Limits{MaxBytes: 2 << 20, Policy: drivers.PolicyLRU}, w)
	leader := c.WaitLeader()
	s := c.Store(leader, "mem", cluster.ReadLocal)
	const entry = 100 << 10
	val := bytes.Repeat([]byte("x"), entry)
	for i := range 200 { // 20 MiB of log, the bound is 8 MiB
		c.Retry("large write", func(ctx context.Context) error {
			return s.Set(ctx, []drivers.Item{{Key: fmt.Sprintf("big:%d", i), Value: val}})
		})
	}
	// About 1.5 times the bound: entry counts come from a moving average
	// of entry sizes, so where the large entries fall can take it above;
	// twice the bound is still well below the 20 MiB written.
	const most = 16 << 20
	c.Poll("logs compacted", func() string {
		for _, n := range c.Live() {
			st := n.Node.Raft().Stats()
			snap, _ := strconv.ParseUint(st["last_snapshot_index"], 10, 64)
			held, err := cluster.LogBytes(n.Node)
			if err != nil {
				return err.Error()
			}
			if snap == 0 || held > most {
				return fmt.Sprintf("%s: snapshot at %d, log holds %d bytes (at most %d)", n.ID, snap, held, most)
			}
		}
		return ""
	})
	c.EnsureSame()
	w.verify(t)
}
