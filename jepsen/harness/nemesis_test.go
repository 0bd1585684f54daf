package harness

import (
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// A fault that loses a disk waits for the whole cluster: after a heal that
// failed (a node left down), it neither wipes another voter while one is
// missing nor goes on without the missing node; it starts that node and
// waits for it to be a voter, and skips the fault when that takes longer
// than Settle.
func TestDiskLossWaitsForAWholeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := writableCluster(t, false)
	ctx := t.Context()
	n := &nemesis{c: c, clock: runClock{start: time.Now()}, rng: rand.New(rand.NewPCG(1, 2)),
		logger: slog.New(slog.DiscardHandler),
		opts:   NemesisOptions{Kinds: []string{NemesisWipe}, Settle: time.Millisecond}}
	n.opts.defaults()

	if err := c.Kill(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	f := n.inject(ctx, NemesisWipe)
	if !strings.HasPrefix(f.Err, "skipped") || f.Node != "" {
		t.Fatalf("a wipe while node2 is down: %+v, want it skipped", f)
	}
	for _, node := range []string{"node1", "node3"} {
		if err := waitNode(ctx, c, node, 10*time.Second); err != nil {
			t.Fatalf("the skipped wipe touched %s: %v", node, err)
		}
	}

	if err := n.settled(ctx, 2*time.Minute); err != nil {
		t.Fatalf("settled with node2 down: %v", err)
	}
	if v, ok := isVoter(ctx, c, "node2"); !ok || !v {
		t.Fatalf("after settled node2 is voter=%t (status read %t)", v, ok)
	}
}
