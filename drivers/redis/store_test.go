package redis

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/internal/testsvc"
)

// newStore returns a Store on a fresh redis-server, emptied before use in
// case the server is a shared one from KVNODE_TEST_REDIS_ADDR.
func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(Config{Addrs: []string{testsvc.Redis(t)}}, nil, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Clear(t.Context()); err != nil {
		t.Fatalf("Clear: %v", err)
	}
	return s
}

// closeStore closes a store the test made and fails the test if that fails.
func closeStore(tb testing.TB, s *Store) {
	tb.Helper()
	if err := s.Close(); err != nil {
		tb.Errorf("Close: %v", err)
	}
}

func in(sec float64) int64 {
	return time.Now().Add(time.Duration(sec * float64(time.Second))).UnixNano()
}

func sorted(keys []string) []string {
	out := slices.Clone(keys)
	sort.Strings(out)
	return out
}

func values(items []drivers.Item) map[string]string {
	m := make(map[string]string, len(items))
	for _, it := range items {
		m[it.Key] = string(it.Value)
	}
	return m
}

func mustSet(t *testing.T, s *Store, items ...drivers.Item) {
	t.Helper()
	if err := s.Set(t.Context(), items); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

func has(t *testing.T, s *Store, keys ...string) []string {
	t.Helper()
	got, err := s.Has(t.Context(), keys)
	if err != nil {
		t.Fatalf("Has: %v", err)
	}
	return sorted(got)
}

func TestStore_SetHasMGetDelete(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	mustSet(t, s,
		drivers.Item{Key: "a", Value: []byte("1")},
		drivers.Item{Key: "b", Value: []byte("2")},
		drivers.Item{Key: "empty", Value: []byte{}},
	)

	if got := has(t, s, "a", "missing", "b", "empty", "a"); !slices.Equal(got, []string{"a", "b", "empty"}) {
		t.Fatalf("Has = %v, want [a b empty] (missing omitted, duplicates collapsed)", got)
	}
	items, err := s.MGet(ctx, []string{"a", "missing", "b", "empty"})
	if err != nil {
		t.Fatalf("MGet: %v", err)
	}
	want := map[string]string{"a": "1", "b": "2", "empty": ""}
	if got := values(items); len(items) != 3 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("MGet = %v (%d items), want %v", got, len(items), want)
	}

	if err := s.Delete(ctx, []string{"a", "missing"}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := has(t, s, "a", "b"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("Has after Delete = %v, want [b]", got)
	}
}

func TestStore_EmptyCallsAreNoOps(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if got, err := s.Has(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("Has(nil) = %v, %v", got, err)
	}
	if got, err := s.MGet(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("MGet(nil) = %v, %v", got, err)
	}
	if got, err := s.TTL(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("TTL(nil) = %v, %v", got, err)
	}
	for name, err := range map[string]error{
		"Set": s.Set(ctx, nil), "MExpire": s.MExpire(ctx, nil), "Delete": s.Delete(ctx, nil),
	} {
		if err != nil {
			t.Fatalf("%s(nil) = %v, want nil", name, err)
		}
	}
}

func TestStore_TTL(t *testing.T) {
	s := newStore(t)
	deadline := time.Now().Add(100 * time.Second).Truncate(time.Second)
	mustSet(t, s,
		drivers.Item{Key: "ttl", Value: []byte("v"), Timeout: deadline.Format(time.RFC3339), Deadline: deadline.UnixNano()},
		drivers.Item{Key: "forever", Value: []byte("v")},
	)
	items, err := s.TTL(t.Context(), []string{"ttl", "forever", "missing"})
	if err != nil {
		t.Fatalf("TTL: %v", err)
	}
	got := map[string]string{}
	for _, it := range items {
		got[it.Key] = it.Timeout
	}
	if len(items) != 2 || got["forever"] != "" {
		t.Fatalf("TTL = %v, want ttl and forever (with \"\"), missing omitted", got)
	}
	ts, err := time.Parse(time.RFC3339, got["ttl"])
	if err != nil {
		t.Fatalf("TTL timeout %q is not RFC 3339: %v", got["ttl"], err)
	}
	if d := ts.Sub(deadline); d < -time.Second || d > time.Second {
		t.Fatalf("TTL timeout %s is %s away from the deadline %s", ts, d, deadline)
	}
	if !strings.HasSuffix(got["ttl"], "Z") {
		t.Fatalf("TTL timeout %q is not in UTC", got["ttl"])
	}
}

func TestStore_SetPastDeadlineDeletes(t *testing.T) {
	s := newStore(t)
	mustSet(t, s, drivers.Item{Key: "k", Value: []byte("old")})
	mustSet(t, s, drivers.Item{Key: "k", Value: []byte("new"), Deadline: in(-10)})
	if got := has(t, s, "k"); len(got) != 0 {
		t.Fatalf("Has after Set with a past deadline = %v, want the key gone", got)
	}
}

func TestStore_ResetClearsTTL(t *testing.T) {
	s := newStore(t)
	mustSet(t, s, drivers.Item{Key: "k", Value: []byte("v1"), Deadline: in(100)})
	mustSet(t, s, drivers.Item{Key: "k", Value: []byte("v2")})
	items, err := s.TTL(t.Context(), []string{"k"})
	if err != nil {
		t.Fatalf("TTL: %v", err)
	}
	if len(items) != 1 || items[0].Timeout != "" {
		t.Fatalf("TTL after re-Set without timeout = %+v, want one item without timeout", items)
	}
}

func TestStore_KeyExpires(t *testing.T) {
	s := newStore(t)
	mustSet(t, s, drivers.Item{Key: "k", Value: []byte("v"), Deadline: in(0.3)})
	stop := time.Now().Add(10 * time.Second)
	for len(has(t, s, "k")) != 0 {
		if time.Now().After(stop) {
			t.Fatal("key with a 300ms deadline still exists after 10s")
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestStore_MExpire(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	mustSet(t, s,
		drivers.Item{Key: "plain", Value: []byte("p")},
		drivers.Item{Key: "doomed", Value: []byte("d")},
		drivers.Item{Key: "ttl", Value: []byte("t"), Deadline: in(100)},
	)
	err := s.MExpire(ctx, []drivers.Item{
		{Key: "plain", Deadline: in(100)},
		{Key: "missing", Deadline: in(100)},
		{Key: "doomed", Deadline: in(-1)},
		{Key: "ttl"}, // no deadline: PERSIST
	})
	if err != nil {
		t.Fatalf("MExpire: %v", err)
	}
	if got := has(t, s, "plain", "missing", "doomed", "ttl"); !slices.Equal(got, []string{"plain", "ttl"}) {
		t.Fatalf("Has after MExpire = %v, want [plain ttl]: missing not created, past deadline deleted", got)
	}
	items, err := s.TTL(ctx, []string{"plain", "ttl"})
	if err != nil {
		t.Fatalf("TTL: %v", err)
	}
	for _, it := range items {
		if (it.Key == "plain") == (it.Timeout == "") {
			t.Fatalf("TTL after MExpire = %+v: want plain with a timeout, ttl without", items)
		}
	}
	got, err := s.MGet(ctx, []string{"plain"})
	if err != nil || len(got) != 1 || string(got[0].Value) != "p" {
		t.Fatalf("MGet after MExpire = %v, %v; want the value kept", got, err)
	}
}

func TestStore_Clear(t *testing.T) {
	s := newStore(t)
	mustSet(t, s, drivers.Item{Key: "a", Value: []byte("1")}, drivers.Item{Key: "b", Value: []byte("2")})
	if err := s.Clear(t.Context()); err != nil {
		t.Fatalf("Clear: %v", err)
	}
	if got := has(t, s, "a", "b"); len(got) != 0 {
		t.Fatalf("Has after Clear = %v, want none", got)
	}
}

func TestStore_LargeValue(t *testing.T) {
	s := newStore(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16)
	big[len(big)-1] = 'X'
	mustSet(t, s, drivers.Item{Key: "big", Value: big})
	items, err := s.MGet(t.Context(), []string{"big"})
	if err != nil {
		t.Fatalf("MGet: %v", err)
	}
	if len(items) != 1 || !bytes.Equal(items[0].Value, big) {
		t.Fatalf("3 MiB value did not round-trip (got %d items)", len(items))
	}
}

// TestStore_SetIsAtomic writes pairs of keys with equal values while a
// reader checks it never sees the two keys disagree. The values are large so
// that redis receives a write in several reads and would serve the reader in
// between, were the two SETs not one MULTI/EXEC transaction.
func TestStore_SetIsAtomic(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	mustSet(t, s, drivers.Item{Key: "x", Value: []byte("0")}, drivers.Item{Key: "y", Value: []byte("0")})
	var (
		wg   sync.WaitGroup
		done atomic.Bool
		torn atomic.Value
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			items, err := s.MGet(ctx, []string{"x", "y"})
			if err != nil {
				torn.Store(err.Error())
				return
			}
			if v := values(items); v["x"] != v["y"] {
				torn.Store(fmt.Sprintf("x=%.8q y=%.8q", v["x"], v["y"]))
				return
			}
		}
	}()
	pad := bytes.Repeat([]byte("."), 256<<10)
	for i := 1; i <= 100; i++ {
		v := append([]byte(strconv.Itoa(i)), pad...)
		if err := s.Set(ctx, []drivers.Item{{Key: "x", Value: v}, {Key: "y", Value: v}}); err != nil {
			t.Errorf("Set #%d: %v", i, err)
			break
		}
	}
	done.Store(true)
	wg.Wait()
	if v := torn.Load(); v != nil {
		t.Fatalf("reader saw a half-applied Set: %v", v)
	}
}
