package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
)

// boundWatch records any node whose engine ends an Apply over its limits.
type boundWatch struct {
	violations atomic.Int64
	first      atomic.Value // string
	applies    atomic.Int64
}

func (w *boundWatch) check(node int, storage string, e drivers.Engine) {
	w.applies.Add(1)
	s := e.Stats()
	if s.Limits.Over(s.Keys, s.Usage) {
		if w.violations.Add(1) == 1 {
			w.first.Store(fmt.Sprintf("node %d storage %s: %d keys, usage %d, over %s", node, storage, s.Keys, s.Usage, s.Limits))
		}
	}
}

func (w *boundWatch) verify(t *testing.T) {
	t.Helper()
	if n := w.violations.Load(); n > 0 {
		t.Fatalf("%d applies ended over the limit; first: %v", n, w.first.Load())
	}
	if w.applies.Load() == 0 {
		t.Fatal("no apply was watched")
	}
}

// boundedCluster starts 3 nodes with one memory storage "mem" bounded by
// lim and waits until every node holds lim as the replicated limits.
func boundedCluster(t *testing.T, lim drivers.Limits, w *boundWatch) *clustertest.Cluster {
	t.Helper()
	c := clustertest.New(t, clustertest.Options{
		Storages: map[string]string{"mem": "memory"},
		Limits:   map[string]drivers.Limits{"mem": lim},
		OnApply:  w.check,
	})
	c.WaitLeader()
	c.Poll("limits replicated", func() string {
		for _, n := range c.Live() {
			if got := n.Engines["mem"].Stats().Limits; got != lim {
				return fmt.Sprintf("%s has limits %+v", n.ID, got)
			}
		}
		return ""
	})
	return c
}

func value(n int) []byte { return bytes.Repeat([]byte("v"), n) }

// TestEviction_FloodKeepsEveryNodeWithinTheLimit writes ten times
// max_memory through every node at once: no write fails, every node's
// engine is within the limit after every apply, and all nodes end with the
// same state and the same evictions.
func TestEviction_FloodKeepsEveryNodeWithinTheLimit(t *testing.T) {
	w := &boundWatch{}
	const maxBytes = 128 << 10
	c := boundedCluster(t, drivers.Limits{MaxBytes: maxBytes, Policy: drivers.PolicyLRU}, w)
	per := drivers.EntryUsage(16, 100, false)
	const batch = 10
	batches := int(10*maxBytes/per) / batch
	var wg sync.WaitGroup
	for node := range c.Nodes {
		wg.Go(func() {
			s := c.Store(node, "mem", cluster.ReadLocal)
			for b := node; b < batches; b += len(c.Nodes) {
				items := make([]drivers.Item, batch)
				for j := range items {
					items[j] = drivers.Item{Key: fmt.Sprintf("k:%014d", b*batch+j), Value: value(100)}
				}
				c.Retry("flood write", func(ctx context.Context) error { return s.Set(ctx, items) })
			}
		})
	}
	wg.Wait()
	c.EnsureSame()
	w.verify(t)
	var evicted int64 = -1
	for _, n := range c.Live() {
		s := n.Engines["mem"].Stats()
		if evicted >= 0 && s.Evicted != evicted {
			t.Fatalf("%s evicted %d keys, another node %d", n.ID, s.Evicted, evicted)
		}
		evicted = s.Evicted
		if s.Usage < maxBytes*8/10 {
			t.Fatalf("%s: usage %d of %d: evicted far more than needed", n.ID, s.Usage, maxBytes)
		}
	}
	if evicted < int64(batches*batch)-maxBytes/per {
		t.Fatalf("evicted %d of %d keys written into room for %d", evicted, batches*batch, maxBytes/per)
	}
}

// TestEviction_LRUKeepsKeysReadOnlyOnFollowers reads a hot set on the
// followers only, while cold keys ten times the storage's size are written
// through the leader: the leader learns of the reads from the followers'
// hints and every hot key survives, while the first cold keys are gone.
func TestEviction_LRUKeepsKeysReadOnlyOnFollowers(t *testing.T) {
	w := &boundWatch{}
	per := drivers.EntryUsage(16, 100, false)
	const capacity = 600
	c := boundedCluster(t, drivers.Limits{MaxBytes: capacity * per, Policy: drivers.PolicyLRU}, w)
	leader := c.WaitLeader()
	hot := make([]string, 20)
	var hotItems []drivers.Item
	for i := range hot {
		hot[i] = fmt.Sprintf("hot:%012d", i)
		hotItems = append(hotItems, drivers.Item{Key: hot[i], Value: value(100)})
	}
	c.Retry("write hot keys", func(ctx context.Context) error {
		return c.Store(leader, "mem", cluster.ReadLocal).Set(ctx, hotItems)
	})
	c.EnsureSame()

	stop := make(chan struct{})
	var readers sync.WaitGroup
	var lost atomic.Value
	for _, f := range c.Followers(leader) {
		readers.Go(func() {
			s := c.Store(f, "mem", cluster.ReadLocal)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				got, err := s.MGet(context.Background(), hot)
				if err == nil && len(got) < len(hot) && lost.Load() == nil {
					lost.Store(fmt.Sprintf("follower %d read %d of %d hot keys after %d reads", f, len(got), len(hot), i))
				}
				time.Sleep(time.Millisecond) // pace the readers, not a synchronisation
			}
		})
	}
	// The leader has heard of the reads once every hot key was used after
	// the readers started, by its stamps.
	started := time.Now()
	lead := c.Nodes[leader].Engines["mem"].(drivers.Evictable)
	c.Poll("hints reach the leader", func() string {
		// Stamps count units of 2^20 ns (drivers/memory/recency.go).
		from := uint32(started.UnixNano() >> 20)
		for _, k := range hot {
			if cand, ok := lead.Peek(k, time.Now().UnixNano()); !ok || cand.Stamp <= from {
				return fmt.Sprintf("%s last used at %d, readers started at %d", k, cand.Stamp, from)
			}
		}
		return ""
	})
	s := c.Store(leader, "mem", cluster.ReadLocal)
	const batch = 10
	for b := range 10 * capacity / batch {
		items := make([]drivers.Item, batch)
		for j := range items {
			items[j] = drivers.Item{Key: fmt.Sprintf("cold:%011d", b*batch+j), Value: value(100)}
		}
		c.Retry("cold write", func(ctx context.Context) error { return s.Set(ctx, items) })
		// Keep the flood to a pace at which a cold key outlives a few hint
		// intervals (about 1000 keys a second, a lifetime over half a
		// second), as it does in any cache worth the name.
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	readers.Wait()
	if msg := lost.Load(); msg != nil {
		t.Fatal(msg)
	}
	c.EnsureSame()
	w.verify(t)
	if got := mget(t, c.Store(leader, "mem", cluster.ReadLocal), "cold:00000000000"); len(got) != 0 {
		t.Fatal("the first cold key survived a flood ten times the storage")
	}
}

// TestEviction_TTLEvictsNearestDeadlinesFirst checks the ttl policy across
// the cluster: the keys evicted are the nearest deadlines, on every node.
func TestEviction_TTLEvictsNearestDeadlinesFirst(t *testing.T) {
	w := &boundWatch{}
	per := drivers.EntryUsage(16, 100, true)
	c := boundedCluster(t, drivers.Limits{MaxBytes: 20 * per, Policy: drivers.PolicyTTL}, w)
	leader := c.WaitLeader()
	s := c.Store(leader, "mem", cluster.ReadLocal)
	base := time.Now().Add(time.Hour).Truncate(time.Second)
	at := func(i int) drivers.Item {
		d := base.Add(time.Duration(i) * time.Minute)
		return drivers.Item{Key: fmt.Sprintf("ttl:%012d", i), Value: value(100), Timeout: d.Format(time.RFC3339), Deadline: d.UnixNano()}
	}
	// Deadlines written out of order: 19, 18, ..., 0.
	var items []drivers.Item
	for i := 19; i >= 0; i-- {
		items = append(items, at(i))
	}
	c.Retry("fill", func(ctx context.Context) error { return s.Set(ctx, items) })
	for i := 20; i < 25; i++ {
		c.Retry("one more", func(ctx context.Context) error { return s.Set(ctx, []drivers.Item{at(i + 100)}) })
	}
	c.EnsureSame()
	w.verify(t)
	for i := range 20 {
		got := mget(t, c.Store(c.Followers(leader)[0], "mem", cluster.ReadLocal), at(i).Key)
		if (i < 5) != (len(got) == 0) {
			t.Fatalf("key with the %d-th nearest deadline: present %v", i, len(got) == 1)
		}
	}
}

// TestEviction_RejectFailsAMultiItemSetWhole checks reject in a cluster: a
// Set that would pass the limit fails on every node alike, naming the
// storage and the limit, and changes nothing, also when forwarded.
func TestEviction_RejectFailsAMultiItemSetWhole(t *testing.T) {
	w := &boundWatch{}
	per := drivers.EntryUsage(1, 10, false)
	c := boundedCluster(t, drivers.Limits{MaxBytes: 3 * per}, w)
	leader := c.WaitLeader()
	c.Retry("fill", func(ctx context.Context) error {
		return c.Store(leader, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{item("a", "0123456789"), item("b", "0123456789")})
	})
	c.EnsureSame()
	before, err := c.Nodes[leader].Node.FSM().StateHash()
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range []int{leader, c.Followers(leader)[0]} {
		err := c.Store(node, "mem", cluster.ReadLocal).Set(t.Context(), []drivers.Item{item("c", "0123456789"), item("d", "0123456789")})
		if err == nil || !strings.Contains(err.Error(), `storage "mem"`) || !strings.Contains(err.Error(), "max_memory") {
			t.Fatalf("node %d: Set past the limit: %v, want a refusal naming the storage and max_memory", node, err)
		}
		// On a follower too: the refusal keeps its sentinel across the hop.
		if !errors.Is(err, drivers.ErrFull) {
			t.Fatalf("node %d: refusal %v does not wrap drivers.ErrFull", node, err)
		}
	}
	c.EnsureSame()
	after, _ := c.Nodes[leader].Node.FSM().StateHash()
	if !bytes.Equal(before, after) {
		t.Fatal("refused Sets changed the state")
	}
	w.verify(t)
}

// TestEviction_RestoreOverTheLimitIsRefused restores a backup into
// clusters whose storage limits are smaller and larger than what it holds:
// the first refuses it before changing anything (a backup is never loaded
// into nodes that have no room for it), the second takes it and then holds
// its own configured limits, on every node and after a restart.
func TestEviction_RestoreOverTheLimitIsRefused(t *testing.T) {
	src := clustertest.New(t, clustertest.Options{Size: 1, Storages: map[string]string{"mem": "memory"}})
	src.Fill(src.WaitLeader(), 300, "k")
	b := backup(t, src.Nodes[0].Node, false)
	usage := src.Nodes[0].Engines["mem"].Stats().Usage

	small := drivers.Limits{MaxBytes: usage / 2, Policy: drivers.PolicyLRU}
	w := &boundWatch{}
	dst := boundedCluster(t, small, w)
	dl := dst.WaitLeader()
	dst.Fill(dl, 5, "old")
	before, _ := dst.Nodes[dl].Node.FSM().StateHash()
	_, err := dst.Nodes[dl].Node.RestoreBackup(t.Context(), bytes.NewReader(b))
	if !errors.Is(err, cluster.ErrBackup) || !errors.Is(err, drivers.ErrFull) || !strings.Contains(err.Error(), "max_memory") {
		t.Fatalf("restore of a backup over the limit: %v, want ErrBackup and ErrFull naming max_memory", err)
	}
	dst.EnsureSame()
	if after, _ := dst.Nodes[dl].Node.FSM().StateHash(); !bytes.Equal(before, after) {
		t.Fatal("the refused restore changed the state")
	}
	w.verify(t)

	large := drivers.Limits{MaxBytes: 2 * usage, Policy: drivers.PolicyLRU}
	big := boundedCluster(t, large, &boundWatch{})
	bl := big.WaitLeader()
	big.Poll("restore on the leader", func() string {
		bl = big.WaitLeader()
		_, err := big.Nodes[bl].Node.RestoreBackup(t.Context(), bytes.NewReader(b))
		if errors.Is(err, cluster.ErrNotLeader) {
			return err.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
		return ""
	})
	// The backup carried no limits; the leader sets its own again.
	big.Poll("limits after the restore", func() string {
		for _, n := range big.Live() {
			if got := n.Engines["mem"].Stats().Limits; got != large {
				return fmt.Sprintf("%s has %+v", n.ID, got)
			}
		}
		return ""
	})
	f := big.Followers(bl)[0]
	big.Kill(f)
	big.Restart(f)
	big.EnsureSame()
	if got := big.Nodes[f].Engines["mem"].Stats(); got.Limits != large || got.Keys != 300 {
		t.Fatalf("restarted follower: %+v", got)
	}
	if got := mget(t, big.Store(f, "mem", cluster.ReadLocal), "k7", "old1"); got["k7"] != string(bytes.Repeat([]byte{7}, 107)) || len(got) != 1 {
		t.Fatalf("restarted follower reads %v", got)
	}
}

// A new cluster's storages are unbounded until the limits are in the log:
// the leader puts them there before its first write, not at its next
// housekeeping tick (an hour away here), so no write is ever applied over
// the configured max_memory.
func TestEviction_ANewLeaderBoundsItsFirstWrites(t *testing.T) {
	const maxBytes = 64 << 10
	var over atomic.Int64
	var worst atomic.Int64
	c := clustertest.New(t, clustertest.Options{
		Storages: map[string]string{"mem": "memory"},
		Limits:   map[string]drivers.Limits{"mem": {MaxBytes: maxBytes, Policy: drivers.PolicyLRU}},
		Tune:     func(cfg *cluster.Config) { cfg.SweepInterval = time.Hour },
		OnApply: func(_ int, _ string, e drivers.Engine) {
			if u := e.Stats().Usage; u > maxBytes {
				over.Add(1)
				if u > worst.Load() {
					worst.Store(u)
				}
			}
		},
	})
	s := c.Store(c.WaitLeader(), "mem", cluster.ReadLocal)
	per := drivers.EntryUsage(16, 100, false)
	for b := range int(2*maxBytes/per) / 10 {
		items := make([]drivers.Item, 10)
		for j := range items {
			items[j] = drivers.Item{Key: fmt.Sprintf("k:%014d", b*10+j), Value: value(100)}
		}
		c.Retry("write", func(ctx context.Context) error { return s.Set(ctx, items) })
	}
	if n := over.Load(); n > 0 {
		t.Fatalf("%d applies ended over max_memory %d (worst %d bytes)", n, maxBytes, worst.Load())
	}
	for _, n := range c.Live() {
		if got := n.Engines["mem"].Stats().Limits.MaxBytes; got != maxBytes {
			t.Fatalf("%s has max_memory %d in force, want %d", n.ID, got, maxBytes)
		}
	}
}
