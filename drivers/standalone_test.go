package drivers_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memory"
)

// countingEngine counts Apply calls of a real engine, to observe batching.
type countingEngine struct {
	drivers.Engine
	applies atomic.Int64
	ops     atomic.Int64
}

func (c *countingEngine) Apply(index uint64, ops []drivers.Op) ([]error, error) {
	c.applies.Add(1)
	c.ops.Add(int64(len(ops)))
	return c.Engine.Apply(index, ops)
}

type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// clockedStandalone is a Standalone over e on a fake clock set to 2030,
// closed when the test ends; opts.Clock is set.
func clockedStandalone(t *testing.T, e drivers.Engine, opts drivers.StandaloneOptions) (*drivers.Standalone, *fakeClock) {
	t.Helper()
	clk := &fakeClock{}
	clk.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	opts.Clock = clk.now
	l := drivers.NewStandalone(e, opts)
	t.Cleanup(func() { _ = l.Close() })
	return l, clk
}

func openBolt(t *testing.T) drivers.Engine {
	t.Helper()
	cfg := boltdb.Config{File: filepath.Join(t.TempDir(), "rr.db")}
	cfg.InitDefaults()
	e, err := boltdb.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestStandalone_GroupCommitCoalescesConcurrentWrites(t *testing.T) {
	ce := &countingEngine{Engine: openBolt(t)}
	l := drivers.NewStandalone(ce, drivers.StandaloneOptions{Driver: "boltdb", SweepInterval: -1})
	t.Cleanup(func() { _ = l.Close() })

	const writers, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				k := fmt.Sprintf("w%d-%d", w, i)
				if err := l.Set(t.Context(), []drivers.Item{{Key: k, Value: []byte(k)}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := ce.ops.Load(); got != writers*each {
		t.Fatalf("ops applied = %d, want %d", got, writers*each)
	}
	// Every acknowledged write is visible.
	for w := range writers {
		keys := []string{fmt.Sprintf("w%d-0", w), fmt.Sprintf("w%d-%d", w, each-1)}
		got, err := l.Has(t.Context(), keys)
		if err != nil || len(got) != 2 {
			t.Fatalf("Has(%v) = %v, %v", keys, got, err)
		}
	}
	if a := ce.applies.Load(); a >= writers*each {
		t.Fatalf("%d writes took %d Apply calls: no batching", writers*each, a)
	}
	t.Logf("%d writes in %d fsynced batches", writers*each, ce.applies.Load())
}

func TestStandalone_StampsWritesWithItsClock(t *testing.T) {
	l, clk := clockedStandalone(t, memory.New(), drivers.StandaloneOptions{SweepInterval: -1})
	ctx := t.Context()

	past := clk.now().Add(-time.Second)
	future := clk.now().Add(time.Second)
	if err := l.Set(ctx, []drivers.Item{
		{Key: "old", Value: []byte("x"), Timeout: past.Format(time.RFC3339), Deadline: past.UnixNano()},
		{Key: "new", Value: []byte("y"), Timeout: future.Format(time.RFC3339), Deadline: future.UnixNano()},
	}); err != nil {
		t.Fatal(err)
	}
	got, _ := l.MGet(ctx, []string{"old", "new"})
	if len(got) != 1 || got[0].Key != "new" {
		t.Fatalf("MGet = %+v, want only new", got)
	}
	clk.add(time.Second) // now == deadline: expired
	if got, _ := l.Has(ctx, []string{"new"}); len(got) != 0 {
		t.Fatalf("key served at its deadline: %v", got)
	}
}

func TestStandalone_SweepRemovesExpiredKeys(t *testing.T) {
	e := memory.New()
	l, clk := clockedStandalone(t, e, drivers.StandaloneOptions{SweepInterval: -1, SweepBatch: 3})

	d := clk.now().Add(time.Minute)
	var items []drivers.Item
	for i := range 10 {
		items = append(items, drivers.Item{Key: fmt.Sprint("k", i), Value: []byte("v"), Timeout: d.Format(time.RFC3339), Deadline: d.UnixNano()})
	}
	items = append(items, drivers.Item{Key: "forever", Value: []byte("v")})
	if err := l.Set(t.Context(), items); err != nil {
		t.Fatal(err)
	}
	l.Sweep(t.Context())
	if n := e.Stats().Keys; n != 11 {
		t.Fatalf("sweep before deadline removed keys: %d left", n)
	}
	clk.add(time.Minute)
	l.Sweep(t.Context())
	if n := e.Stats().Keys; n != 1 {
		t.Fatalf("after sweep %d keys left, want 1", n)
	}
}

func TestStandalone_CloseWaitsAndRefusesLaterCalls(t *testing.T) {
	l := drivers.NewStandalone(openBolt(t), drivers.StandaloneOptions{SweepInterval: time.Millisecond})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				err := l.Set(context.Background(), []drivers.Item{{Key: fmt.Sprint(i, "-", j), Value: []byte("v")}})
				if errors.Is(err, drivers.ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, err := l.MGet(t.Context(), []string{"a"}); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("MGet after Close: %v, want ErrClosed", err)
	}
	if err := l.Delete(t.Context(), []string{"a"}); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Delete after Close: %v, want ErrClosed", err)
	}
}

// A clock that steps back (NTP, a resumed VM) does not bring back a key a
// read already found expired.
func TestStandalone_ExpirySeenStaysSeenWhenTheClockStepsBack(t *testing.T) {
	l, clk := clockedStandalone(t, memory.New(), drivers.StandaloneOptions{SweepInterval: -1})
	ctx := t.Context()
	deadline := clk.now().Add(time.Second)
	if err := l.Set(ctx, []drivers.Item{{Key: "k", Value: []byte("v"), Timeout: deadline.Format(time.RFC3339), Deadline: deadline.UnixNano()}}); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Second)
	if got, _ := l.MGet(ctx, []string{"k"}); len(got) != 0 {
		t.Fatalf("served after its deadline: %v", got)
	}
	clk.add(-2 * time.Second)
	if got, _ := l.MGet(ctx, []string{"k"}); len(got) != 0 {
		t.Fatalf("after the clock stepped back, a key already seen expired is served again: %v", got)
	}
}
