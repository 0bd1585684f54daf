package drivers

import (
	"context"
	"fmt"
)

// Expired keys are hidden from reads the moment their deadline passes, on
// every node, by the time each read judges expiry by: sweeping only frees
// the memory (and file space) they hold. A sweep removes them with OpExpire
// writes through the same committer as every other write, so in a cluster
// the leader's sweep reaches every node through the log, and on one node
// it takes its turn in the group commit.

const (
	// DefaultSweepBatch is how many keys one OpExpire removes at most.
	DefaultSweepBatch = 512
	// sweepBatchesPerRun bounds one sweep, so it never holds up writes
	// for long; what is left waits for the next.
	sweepBatchesPerRun = 8
)

// Sweep removes keys of e whose deadline passed by now(), in OpExpire
// writes of at most batch keys (DefaultSweepBatch when not positive)
// through commit, and returns how many keys it removed. OpExpire removes
// a key only if its deadline is still the one the scan saw, so a key
// written again meanwhile survives.
func Sweep(ctx context.Context, e Engine, now func() int64, batch int, commit func(context.Context, Op) error) (int, error) {
	if batch <= 0 {
		batch = DefaultSweepBatch
	}
	removed := 0
	for range sweepBatchesPerRun {
		items, err := e.Expired(now(), batch)
		if err != nil {
			return removed, fmt.Errorf("expiry sweep: scan: %w", err)
		}
		if len(items) == 0 {
			return removed, nil
		}
		if err := commit(ctx, Op{Kind: OpExpire, Items: items}); err != nil {
			return removed, fmt.Errorf("expiry sweep: %w", err)
		}
		removed += len(items)
		if len(items) < batch {
			return removed, nil
		}
	}
	return removed, nil
}
