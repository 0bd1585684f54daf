package drivers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
)

// boundChecker fails the test if the engine ever ends an Apply over its
// limits: the bound must hold after every batch, not eventually.
type boundChecker struct {
	*memory.Engine
	t       testing.TB
	mu      sync.Mutex
	applies int
	maxSeen int64
}

func (b *boundChecker) Apply(index uint64, ops []drivers.Op) ([]error, error) {
	errs, err := b.Engine.Apply(index, ops)
	s := b.Stats()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.applies++
	b.maxSeen = max(b.maxSeen, s.Usage)
	if s.Limits.Over(s.Keys, s.Usage) {
		b.t.Errorf("after apply %d: %d keys, usage %d: over %s", b.applies, s.Keys, s.Usage, s.Limits)
	}
	return errs, err
}

func boundedLocal(t *testing.T, lim drivers.Limits, clock *fakeClock) (*drivers.Standalone, *boundChecker) {
	t.Helper()
	e := &boundChecker{Engine: memory.New(), t: t}
	l := drivers.NewStandalone(e, drivers.StandaloneOptions{Driver: "memory", Storage: "cache", Clock: clock.now, SweepInterval: -1})
	t.Cleanup(func() { _ = l.Close() })
	if err := l.SetLimits(context.Background(), lim); err != nil {
		t.Fatal(err)
	}
	return l, e
}

func val(n int) []byte { return []byte(strings.Repeat("v", n)) }

// TestStandalone_FloodStaysWithinMaxMemory writes ten times max_memory through
// concurrent writers under each evicting policy: no write fails, the engine
// is within its limit after every batch, and the storage ends up nearly
// full rather than evicted empty.
func TestStandalone_FloodStaysWithinMaxMemory(t *testing.T) {
	for _, policy := range []drivers.Policy{drivers.PolicyLRU, drivers.PolicyRandom, drivers.PolicyTTL} {
		t.Run(policy.String(), func(t *testing.T) {
			clock := &fakeClock{}
			clock.add(time.Hour)
			const maxBytes = 64 << 10
			l, e := boundedLocal(t, drivers.Limits{MaxBytes: maxBytes, Policy: policy}, clock)
			per := drivers.EntryUsage(16, 100, true)
			total := 10 * maxBytes / per
			const writers = 8
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Go(func() {
					for i := w; i < int(total); i += writers {
						clock.add(time.Millisecond)
						deadline := clock.now().Add(time.Hour + time.Duration(i)*time.Second)
						err := l.Set(context.Background(), []drivers.Item{{
							Key: fmt.Sprintf("key:%012d", i), Value: val(100),
							Timeout: deadline.Format(time.RFC3339), Deadline: deadline.UnixNano(),
						}})
						if err != nil {
							errs <- fmt.Errorf("write %d: %w", i, err)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			s := e.Stats()
			if s.Evicted < total-maxBytes/per {
				t.Fatalf("evicted %d keys of %d written into room for %d", s.Evicted, total, maxBytes/per)
			}
			if s.Usage < maxBytes-maxBytes/10 {
				t.Fatalf("usage %d: evicted far more than needed under %d", s.Usage, maxBytes)
			}
		})
	}
}

// TestStandalone_LRUKeepsWhatIsRead reads a hot set while a flood of cold keys
// ten times the storage's size goes through: every hot key survives, and
// the cold keys written first are gone.
func TestStandalone_LRUKeepsWhatIsRead(t *testing.T) {
	clock := &fakeClock{}
	clock.add(time.Hour)
	per := drivers.EntryUsage(16, 100, false)
	l, _ := boundedLocal(t, drivers.Limits{MaxBytes: 500 * per, Policy: drivers.PolicyLRU}, clock)
	ctx := context.Background()
	hot := make([]string, 50)
	for i := range hot {
		hot[i] = fmt.Sprintf("hot:%012d", i)
		if err := l.Set(ctx, []drivers.Item{{Key: hot[i], Value: val(100)}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5000 {
		clock.add(time.Millisecond)
		if err := l.Set(ctx, []drivers.Item{{Key: fmt.Sprintf("cold:%011d", i), Value: val(100)}}); err != nil {
			t.Fatalf("cold write %d: %v", i, err)
		}
		if i%20 == 0 {
			got, err := l.MGet(ctx, hot)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(hot) {
				t.Fatalf("after %d cold writes only %d of %d hot keys are left", i+1, len(got), len(hot))
			}
		}
	}
	if got, _ := l.Has(ctx, []string{"cold:00000000000"}); len(got) != 0 {
		t.Fatal("the first cold key survived a flood ten times the storage")
	}
}

// TestStandalone_TTLEvictsNearestDeadlinesFirst fills a storage with keys of
// known deadlines and some without a TTL, then writes more: the keys
// evicted are exactly those with the nearest deadlines, never one without a
// TTL; once only keys without a TTL are left, writes fail as under reject.
func TestStandalone_TTLEvictsNearestDeadlinesFirst(t *testing.T) {
	clock := &fakeClock{}
	clock.add(time.Hour)
	per := drivers.EntryUsage(16, 100, true)
	l, e := boundedLocal(t, drivers.Limits{MaxBytes: 40 * per, Policy: drivers.PolicyTTL}, clock)
	ctx := context.Background()
	deadlineOf := func(i int) time.Time { return clock.now().Add(time.Hour + time.Duration((i*7)%30)*time.Minute) }
	var items []drivers.Item
	for i := range 30 {
		d := deadlineOf(i)
		items = append(items, drivers.Item{Key: fmt.Sprintf("ttl:%012d", i), Value: val(100), Timeout: d.Format(time.RFC3339), Deadline: d.UnixNano()})
	}
	for i := range 10 {
		items = append(items, drivers.Item{Key: fmt.Sprintf("kept:%011d", i), Value: val(100 + drivers.ExpiryOverhead)})
	}
	if err := l.Set(ctx, items); err != nil {
		t.Fatal(err)
	}
	// Ten new keys with far deadlines need ten victims.
	far := clock.now().Add(24 * time.Hour)
	for i := range 10 {
		if err := l.Set(ctx, []drivers.Item{{Key: fmt.Sprintf("new:%012d", i), Value: val(100), Timeout: far.Format(time.RFC3339), Deadline: far.UnixNano()}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		has, _ := l.Has(ctx, []string{items[i].Key})
		nearest := (i*7)%30 < 10
		if nearest == (len(has) == 1) {
			t.Fatalf("key with deadline rank %d: present %v", (i*7)%30, len(has) == 1)
		}
	}
	if s := e.Stats(); s.Evicted != 10 {
		t.Fatalf("evicted %d, want 10", s.Evicted)
	}
	// Evict every key with a TTL; then nothing more can go.
	for i := 10; i < 40; i++ {
		if err := l.Set(ctx, []drivers.Item{{Key: fmt.Sprintf("new:%012d", i), Value: val(100 + drivers.ExpiryOverhead)}}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	err := l.Set(ctx, []drivers.Item{{Key: "one-too-many", Value: val(100)}})
	if !errors.Is(err, drivers.ErrFull) {
		t.Fatalf("write with no key with a TTL left: %v, want ErrFull", err)
	}
	if got, _ := l.Has(ctx, []string{"kept:00000000000", "kept:00000000009"}); len(got) != 2 {
		t.Fatal("a key without a TTL was evicted")
	}
}

// TestStandalone_RejectFailsWholeAndNamesTheStorage checks the reject policy's
// error and that a multi-item Set that cannot fit changes nothing.
func TestStandalone_RejectFailsWholeAndNamesTheStorage(t *testing.T) {
	clock := &fakeClock{}
	per := drivers.EntryUsage(1, 10, false)
	l, e := boundedLocal(t, drivers.Limits{MaxBytes: 3 * per}, clock)
	ctx := context.Background()
	one := func(k string) drivers.Item { return drivers.Item{Key: k, Value: val(10)} }
	if err := l.Set(ctx, []drivers.Item{one("a"), one("b")}); err != nil {
		t.Fatal(err)
	}
	before, _ := e.Hash()
	err := l.Set(ctx, []drivers.Item{one("c"), one("d")})
	if !errors.Is(err, drivers.ErrFull) || !strings.Contains(err.Error(), `"cache"`) || !strings.Contains(err.Error(), "max_memory") {
		t.Fatalf("err = %v: want ErrFull naming storage \"cache\" and max_memory", err)
	}
	after, _ := e.Hash()
	if string(before) != string(after) {
		t.Fatal("the refused Set changed the state")
	}
	if got, _ := l.Has(ctx, []string{"c", "d"}); len(got) != 0 {
		t.Fatalf("refused Set left %v", got)
	}
	if s := e.Stats(); s.Evicted != 0 || s.Rejected != 1 {
		t.Fatalf("Stats = %+v", s)
	}
}

// TestStandalone_OversizedWriteEvictsNothing checks that a write larger than the
// whole limit fails without evicting anything for it.
func TestStandalone_OversizedWriteEvictsNothing(t *testing.T) {
	clock := &fakeClock{}
	per := drivers.EntryUsage(1, 10, false)
	l, e := boundedLocal(t, drivers.Limits{MaxBytes: 3 * per, Policy: drivers.PolicyLRU}, clock)
	ctx := context.Background()
	if err := l.Set(ctx, []drivers.Item{{Key: "a", Value: val(10)}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Set(ctx, []drivers.Item{{Key: "big", Value: val(int(4 * per))}}); !errors.Is(err, drivers.ErrFull) {
		t.Fatalf("oversized write: %v, want ErrFull", err)
	}
	if s := e.Stats(); s.Keys != 1 || s.Evicted != 0 {
		t.Fatalf("Stats = %+v: the oversized write evicted keys", s)
	}
}
