package harness

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopBehindTheHarness ends a node's process the way a crash would: not
// through the Cluster, so the harness did not announce it.
func stopBehindTheHarness(t *testing.T, c Cluster, node string) {
	t.Helper()
	var err error
	switch c := c.(type) {
	case *Docker:
		err = c.docker(t.Context(), "stop", "-t", "1", c.ids[node])
	case *Processes:
		err = c.signal(node, syscall.SIGTERM)
	default:
		t.Fatalf("unknown cluster %T", c)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func waitExit(t *testing.T, c Cluster, node string, expected bool) {
	t.Helper()
	for i := 0; i < 150; i++ {
		for _, e := range c.Exits() {
			if e.Node == node && e.Expected == expected {
				return
			}
		}
		sleepCtx(t.Context(), 200*time.Millisecond)
	}
	t.Fatalf("no exit of %s with expected=%t recorded: %+v", node, expected, c.Exits())
}

// The harness records every exit of a real node, tells its own kills from
// the rest, and keeps the log of a node it replaced.
func TestExitsAndLogsAreKept(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := testCluster(t, false)
	ctx := t.Context()
	if err := c.Kill(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	waitExit(t, c, "node1", true)
	if err := c.Start(ctx, "node1"); err != nil {
		t.Fatal(err)
	}

	stopBehindTheHarness(t, c, "node2")
	waitExit(t, c, "node2", false)
	clock := runClock{start: time.Now()}
	if a := CheckExits(c.Exits(), clock); len(a) != 1 || !strings.HasPrefix(a[0].Detail, "node2 exited") {
		t.Fatalf("exit anomalies = %+v, want node2's alone", a)
	}
	if err := c.Start(ctx, "node2"); err != nil {
		t.Fatal(err)
	}

	before, err := c.FullLogs(ctx, "node3")
	if err != nil || len(before) < 100 {
		t.Fatalf("node3's log before: %d bytes, %v", len(before), err)
	}
	if err := c.Replace(ctx, "node3"); err != nil {
		t.Fatal(err)
	}
	after, err := c.FullLogs(context.WithoutCancel(ctx), "node3")
	if err != nil || !strings.HasPrefix(after, before[:100]) || len(after) <= len(before) {
		t.Fatalf("node3's log after its replacement (%d bytes, %v) does not keep the first %d bytes", len(after), err, len(before))
	}
	if a := Crashes(ctx, c); len(a) != 0 {
		t.Fatalf("crashes: %v", a)
	}
}
