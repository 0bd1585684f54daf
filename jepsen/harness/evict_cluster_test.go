package harness

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvnode/kvnode/client"
)

// On a real cluster, the followers see every eviction on every node, and
// what they see is what the nodes hold: a key written to the bounded
// storage and gone afterwards was named by a recorded eviction, and each
// window lies inside the writes that caused it. 48 writes of 4 KiB fill the
// 128KiB storage about one and a half times over.
func TestEventFollowerSeesEvictions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := writableCluster(t, false)
	ctx := t.Context()
	// The leader puts its configured limits into the replicated state at
	// its first sweep; writes before that would not be bounded.
	waitLimits(t, c)
	clock := runClock{start: time.Now()}
	f := newEventFollower(BoundedStorage, c.AdminToken(), clock, c.Nodes())
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, n := range c.Nodes() {
		wg.Go(func() { f.follow(fctx, c, n) })
	}

	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cl, err := client.Dial(cctx, c.Addr("node1"), client.WithPoolSize(1))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cl.Close() }()
	first := clock.now()
	var keys []string
	for i := range 48 {
		key := fmt.Sprintf("k%02d", i)
		var err error
		for attempt := 0; attempt < 20; attempt++ { // a write refused as not applied is retried
			if err = cl.Set(cctx, BoundedStorage, client.Item{Key: key, Value: []byte(strings.Repeat("x", fillSize))}); err == nil {
				break
			}
			sleepCtx(cctx, 100*time.Millisecond)
		}
		if err != nil {
			t.Fatalf("set %s: %v", key, err)
		}
		keys = append(keys, key)
	}
	last := clock.now()
	stop()
	wg.Wait()
	f.drain(ctx, c, 30*time.Second)
	rep := f.Report(nil, 50*time.Millisecond)
	if len(rep.Anomalies) > 0 || rep.Gaps > 0 {
		t.Fatalf("anomalies %v, gaps %d, on a cluster without faults", rep.Anomalies, rep.Gaps)
	}
	named := map[string]bool{}
	for _, e := range rep.Evictions {
		if e.All || e.Lower > e.Upper || e.Lower < first-int64(50*time.Millisecond) || e.Upper < first {
			t.Errorf("eviction %+v: want keys named, within the writes from %d to %d", e, first, last)
		}
		for _, k := range e.Keys {
			named[k] = true
		}
	}
	if len(named) == 0 {
		t.Fatalf("no eviction recorded after writing 1.5 times the storage's limit: %+v", rep)
	}
	for _, n := range c.Nodes() {
		got, err := cl.MGet(cctx, BoundedStorage, keys...)
		if n != "node1" {
			ncl, derr := client.Dial(cctx, c.Addr(n), client.WithPoolSize(1))
			if derr != nil {
				t.Fatal(derr)
			}
			got, err = ncl.MGet(cctx, BoundedStorage, keys...)
			_ = ncl.Close()
		}
		if err != nil {
			t.Fatalf("read on %s: %v", n, err)
		}
		for _, k := range keys {
			if _, present := got[k]; present == named[k] {
				t.Errorf("%s on %s: present %t, named by a recorded eviction %t", k, n, present, named[k])
			}
		}
	}
}

// waitLimits polls every node's status until the bounded storage's limit
// is in force there, at most 30 s.
func waitLimits(t *testing.T, c Cluster) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	inForce := func(st NodeStatus) bool {
		return slices.ContainsFunc(st.Storages, func(s StorageSummary) bool { return s.Name == BoundedStorage && s.MaxMemory > 0 })
	}
	for _, n := range c.Nodes() {
		for i := 0; ; i++ {
			st, err := GetStatus(t.Context(), c.Addr(n))
			if err == nil && inForce(st) {
				break
			}
			if i >= 300 || time.Now().After(deadline) {
				t.Fatalf("%s: no limit on %s after 30s (%v, %+v)", n, BoundedStorage, err, st.Storages)
			}
			sleepCtx(t.Context(), 100*time.Millisecond)
		}
	}
}
