package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
)

func TestCluster_ConcurrentForwardedWritesAllLand(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Storages: map[string]string{"mem": "memory"}})
	leader := c.WaitLeader()
	f := c.Followers(leader)[0]
	term := c.Nodes[leader].Node.Raft().CurrentTerm()
	s := c.Store(f, "mem", cluster.ReadLocal)

	const writers, each = 200, 20
	var wg sync.WaitGroup
	var retried atomic.Int64
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				k := fmt.Sprintf("w%d-%d", w, i)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					err := s.Set(ctx, []drivers.Item{item(k, k)})
					cancel()
					if err == nil {
						break
					}
					// Only a leadership change (a loaded machine) excuses a
					// failed write, and then only as "no leader" or
					// "outcome unknown"; a Set is idempotent, so retry it.
					moved := c.Nodes[leader].Node.Raft().CurrentTerm() != term
					if !moved || (!errors.Is(err, cluster.ErrNoLeader) && !errors.Is(err, cluster.ErrOutcomeUnknown)) {
						errs <- fmt.Errorf("%s (leadership moved: %v): %w", k, moved, err)
						return
					}
					retried.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	batches, events, _ := cluster.ForwardStats(c.Nodes[f].Node)
	if events < writers*each || batches >= events {
		t.Fatalf("%d writes forwarded in %d batches: want fewer batches than writes", events, batches)
	}
	c.EnsureSame()
	keys := make([]string, 0, writers*each)
	for w := range writers {
		for i := range each {
			keys = append(keys, fmt.Sprintf("w%d-%d", w, i))
		}
	}
	for i := range c.Nodes {
		got := mget(t, c.Store(i, "mem", cluster.ReadLocal), keys...)
		for _, k := range keys {
			if got[k] != k {
				t.Fatalf("node %d: %s = %q", i, k, got[k])
			}
		}
	}
	t.Logf("%d writes in %d batches (%.1f a batch), %d retried after a leadership change",
		events, batches, float64(events)/float64(batches), retried.Load())
}

func TestCluster_LeaderKilledWithBatchInFlightLosesNoAcknowledgedWrite(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{})
	leader := c.WaitLeader()
	f := c.Followers(leader)[0]
	s := c.Store(f, "bolt", cluster.ReadLocal)

	var (
		mu           sync.Mutex
		acked        []string
		unknown      atomic.Int64
		noLeader     atomic.Int64
		stop         atomic.Bool
		wg           sync.WaitGroup
		unexpectedMu sync.Mutex
		unexpected   []error
	)
	const writers = 32
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < 500 && !stop.Load(); i++ {
				k := fmt.Sprintf("w%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				err := s.Set(ctx, []drivers.Item{item(k, k)})
				cancel()
				switch {
				case err == nil:
					mu.Lock()
					acked = append(acked, k)
					mu.Unlock()
				case errors.Is(err, cluster.ErrOutcomeUnknown):
					unknown.Add(1)
				case errors.Is(err, cluster.ErrNoLeader):
					noLeader.Add(1)
				default:
					unexpectedMu.Lock()
					unexpected = append(unexpected, fmt.Errorf("%s: %w", k, err))
					unexpectedMu.Unlock()
				}
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	c.Poll("writes acknowledged through batches", func() string {
		batches, events, inflight := cluster.ForwardStats(c.Nodes[f].Node)
		if n := count(); n < 100 || events <= batches || inflight == 0 {
			return fmt.Sprintf("%d acked, %d events in %d batches, %d in flight", n, events, batches, inflight)
		}
		return ""
	})
	c.Kill(leader)
	c.WaitLeader(leader)
	n := count()
	c.Poll("writes continue under the new leader", func() string {
		if got := count(); got < n+100 {
			return fmt.Sprintf("%d acked, had %d at kill", got, n)
		}
		return ""
	})
	stop.Store(true)
	wg.Wait()
	for _, err := range unexpected {
		t.Errorf("write failed neither as outcome unknown nor as no leader: %v", err)
	}

	c.Restart(leader)
	c.EnsureSame()
	for i := range c.Nodes {
		got := mget(t, c.Store(i, "bolt", cluster.ReadLocal), acked...)
		for _, k := range acked {
			if got[k] != k {
				t.Fatalf("node %d lost acknowledged write %s", i, k)
			}
		}
	}
	t.Logf("%d acknowledged, %d outcome unknown, %d no leader", len(acked), unknown.Load(), noLeader.Load())
}
