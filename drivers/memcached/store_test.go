package memcached

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/internal/testsvc"
)

// newStore returns a Store on a fresh memcached, flushed before use in case
// the server is a shared one from KVNODE_TEST_MEMCACHED_ADDR.
func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(Config{Addr: Addrs{testsvc.Memcached(t)}}, nil, nil)
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

func in(d time.Duration) int64 { return time.Now().Add(d).UnixNano() }

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
	sort.Strings(got)
	return got
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
		t.Fatalf("Has = %v, want [a b empty]", got)
	}
	items, err := s.MGet(ctx, []string{"a", "missing", "b", "empty"})
	if err != nil {
		t.Fatalf("MGet: %v", err)
	}
	got := map[string]string{}
	for _, it := range items {
		if it.Value == nil {
			t.Fatalf("MGet item %q has a nil value", it.Key)
		}
		got[it.Key] = string(it.Value)
	}
	if want := map[string]string{"a": "1", "b": "2", "empty": ""}; fmt.Sprint(got) != fmt.Sprint(want) || len(items) != 3 {
		t.Fatalf("MGet = %v, want %v (missing omitted)", got, want)
	}
	if err := s.Delete(ctx, []string{"a", "missing"}); err != nil {
		t.Fatalf("Delete (with a missing key): %v", err)
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
	for name, err := range map[string]error{
		"Set": s.Set(ctx, nil), "MExpire": s.MExpire(ctx, nil), "Delete": s.Delete(ctx, nil),
	} {
		if err != nil {
			t.Fatalf("%s(nil) = %v, want nil", name, err)
		}
	}
}

func TestStore_TTLNotSupported(t *testing.T) {
	s := newStore(t)
	_, err := s.TTL(t.Context(), []string{"k"})
	if !errors.Is(err, ErrTTLNotSupported) || !errors.Is(err, drivers.ErrNotSupported) {
		t.Fatalf("TTL = %v, want ErrTTLNotSupported matching drivers.ErrNotSupported", err)
	}
	const rr = "not valid request for memcached, see https://github.com/memcached/memcached/issues/239"
	if err.Error() != rr {
		t.Fatalf("TTL error text = %q, want RoadRunner's %q", err, rr)
	}
}

// waitGone polls until key no longer exists, failing after a bound.
func waitGone(t *testing.T, s *Store, key string, bound time.Duration) {
	t.Helper()
	stop := time.Now().Add(bound)
	for len(has(t, s, key)) != 0 {
		if time.Now().After(stop) {
			t.Fatalf("key %q still exists after %s", key, bound)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestStore_KeyExpires(t *testing.T) {
	t.Parallel() // waits out one-second expiries
	s := newStore(t)
	mustSet(t, s, drivers.Item{Key: "k", Value: []byte("v"), Deadline: in(time.Second)})
	mustSet(t, s,
		drivers.Item{Key: "hour", Value: []byte("v"), Deadline: in(time.Hour)},
		// Over 30 days memcached wants an absolute time; sent as relative
		// seconds it would read as a 1970 date and expire at once.
		drivers.Item{Key: "months", Value: []byte("v"), Deadline: in(60 * 24 * time.Hour)},
	)
	waitGone(t, s, "k", 10*time.Second)
	if got := has(t, s, "hour", "months"); !slices.Equal(got, []string{"hour", "months"}) {
		t.Fatalf("keys with far deadlines: Has = %v, want [hour months]", got)
	}
}

func TestStore_SetPastDeadlineDeletes(t *testing.T) {
	s := newStore(t)
	mustSet(t, s, drivers.Item{Key: "k", Value: []byte("old")})
	mustSet(t, s,
		drivers.Item{Key: "k", Value: []byte("new"), Deadline: in(-time.Second)},
		drivers.Item{Key: "never", Value: []byte("x"), Deadline: 1},
	)
	if got := has(t, s, "k", "never"); len(got) != 0 {
		t.Fatalf("Has after Set with past deadlines = %v, want none", got)
	}
}

func TestStore_ResetClearsExpiry(t *testing.T) {
	t.Parallel() // waits out one-second expiries
	s := newStore(t)
	mustSet(t, s, drivers.Item{Key: "k", Value: []byte("v1"), Deadline: in(time.Second)})
	mustSet(t, s, drivers.Item{Key: "k", Value: []byte("v2")})
	mustSet(t, s, drivers.Item{Key: "probe", Value: []byte("p"), Deadline: in(time.Second)})
	waitGone(t, s, "probe", 10*time.Second) // the old deadline has passed by now
	if got := has(t, s, "k"); len(got) != 1 {
		t.Fatal("re-Set without deadline kept the old expiry")
	}
}

func TestStore_MExpire(t *testing.T) {
	t.Parallel() // waits out one-second expiries
	s := newStore(t)
	ctx := t.Context()
	mustSet(t, s,
		drivers.Item{Key: "soon", Value: []byte("s")},
		drivers.Item{Key: "doomed", Value: []byte("d")},
		drivers.Item{Key: "persist", Value: []byte("p"), Deadline: in(time.Second)},
	)
	err := s.MExpire(ctx, []drivers.Item{
		{Key: "soon", Deadline: in(time.Second)},
		{Key: "missing", Deadline: in(time.Hour)},
		{Key: "doomed", Deadline: in(-time.Second)},
		{Key: "persist"},
	})
	if err != nil {
		t.Fatalf("MExpire: %v", err)
	}
	if got := has(t, s, "soon", "missing", "doomed", "persist"); !slices.Equal(got, []string{"persist", "soon"}) {
		t.Fatalf("Has after MExpire = %v, want [persist soon]: missing not created, past deadline deleted", got)
	}
	items, err := s.MGet(ctx, []string{"soon"})
	if err != nil || len(items) != 1 || string(items[0].Value) != "s" {
		t.Fatalf("MGet after MExpire = %v, %v; want the value kept", items, err)
	}
	waitGone(t, s, "soon", 10*time.Second)
	if got := has(t, s, "persist"); len(got) != 1 {
		t.Fatal("MExpire without deadline did not remove the expiry")
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

func TestStore_ValueSizeLimit(t *testing.T) {
	s := newStore(t)
	// memcached's default item limit is 1 MiB including the item header.
	fits := bytes.Repeat([]byte("x"), 1<<20-1024)
	fits[len(fits)-1] = 'Y'
	mustSet(t, s, drivers.Item{Key: "fits", Value: fits})
	items, err := s.MGet(t.Context(), []string{"fits"})
	if err != nil || len(items) != 1 || !bytes.Equal(items[0].Value, fits) {
		t.Fatalf("a value just under 1 MiB did not round-trip (%d items, %v)", len(items), err)
	}

	err = s.Set(t.Context(), []drivers.Item{{Key: "big", Value: bytes.Repeat([]byte("x"), 1<<20+1)}})
	if !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("Set of a value over 1 MiB = %v, want ErrValueTooLarge", err)
	}
	// The refused write must not disturb the next calls.
	mustSet(t, s, drivers.Item{Key: "after", Value: []byte("ok")})
	if got := has(t, s, "after", "big"); !slices.Equal(got, []string{"after"}) {
		t.Fatalf("Has after a refused write = %v, want [after]", got)
	}
}

func TestStore_MalformedKey(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	for _, key := range []string{"has space", "tab\tkey", "new\nline", strings.Repeat("k", 251), "del\x7f"} {
		err := s.Set(ctx, []drivers.Item{{Key: "good", Value: []byte("v")}, {Key: key, Value: []byte("v")}})
		if !errors.Is(err, ErrMalformedKey) {
			t.Fatalf("Set(%.20q) = %v, want ErrMalformedKey", key, err)
		}
		if _, err := s.MGet(ctx, []string{key}); !errors.Is(err, ErrMalformedKey) {
			t.Fatalf("MGet(%.20q) = %v, want ErrMalformedKey", key, err)
		}
		if _, err := s.Has(ctx, []string{key}); !errors.Is(err, ErrMalformedKey) {
			t.Fatalf("Has(%.20q) = %v, want ErrMalformedKey", key, err)
		}
		if err := s.Delete(ctx, []string{key}); !errors.Is(err, ErrMalformedKey) {
			t.Fatalf("Delete(%.20q) = %v, want ErrMalformedKey", key, err)
		}
		if err := s.MExpire(ctx, []drivers.Item{{Key: key}}); !errors.Is(err, ErrMalformedKey) {
			t.Fatalf("MExpire(%.20q) = %v, want ErrMalformedKey", key, err)
		}
	}
	if got := has(t, s, "good"); len(got) != 0 {
		t.Fatal("Set with one malformed key wrote the other items")
	}
	if got := has(t, s, strings.Repeat("k", 250)); len(got) != 0 {
		t.Fatal("a 250-byte key is legal and missing, Has should just omit it")
	}
}

func TestStore_CancelledContext(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Set(ctx, []drivers.Item{{Key: "k", Value: []byte("v")}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Set with a cancelled context = %v, want context.Canceled", err)
	}
	if got := has(t, s, "k"); len(got) != 0 {
		t.Fatal("Set with a cancelled context wrote the item")
	}
}

func TestStore_IsLazy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Addr: Addrs{addr, "memcached.invalid:11211"}}, nil, nil)
	if err != nil {
		t.Fatalf("New with unreachable servers = %v, want success (connections are lazy)", err)
	}
	defer closeStore(t, s)
	if _, err := s.Has(t.Context(), []string{"k"}); err == nil {
		t.Fatal("Has against unreachable servers succeeded")
	}
}

func TestStore_Closed(t *testing.T) {
	s := newStore(t)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.MGet(t.Context(), []string{"k"}); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("MGet after Close = %v, want ErrClosed", err)
	}
	if _, err := s.TTL(t.Context(), []string{"k"}); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("TTL after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
}

func TestStore_Spans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s, err := New(Config{Addr: Addrs{testsvc.Memcached(t)}}, tp, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore(t, s)
	ctx, parent := tp.Tracer("test").Start(t.Context(), "kv:mget")
	_, err = s.MGet(ctx, []string{"k"})
	parent.End()
	if err != nil {
		t.Fatalf("MGet: %v", err)
	}
	for _, sp := range rec.Ended() {
		if sp.Name() == "memcached:mget" {
			if sp.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Fatal("memcached:mget span is not a child of the caller's span")
			}
			return
		}
	}
	t.Fatal("no memcached:mget span recorded")
}

func BenchmarkStore_MGet50(b *testing.B) {
	s, err := New(Config{Addr: Addrs{testsvc.Memcached(b)}}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer closeStore(b, s)
	keys := make([]string, 50)
	items := make([]drivers.Item, 50)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
		items[i] = drivers.Item{Key: keys[i], Value: []byte("0123456789abcdef")}
	}
	if err := s.Set(b.Context(), items); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if got, err := s.MGet(b.Context(), keys); err != nil || len(got) != 50 {
			b.Fatalf("MGet = %d, %v", len(got), err)
		}
	}
}

func BenchmarkStore_Set1(b *testing.B) {
	s, err := New(Config{Addr: Addrs{testsvc.Memcached(b)}}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer closeStore(b, s)
	item := []drivers.Item{{Key: "k", Value: []byte("0123456789abcdef"), Deadline: time.Now().Add(time.Hour).UnixNano()}}
	for b.Loop() {
		if err := s.Set(b.Context(), item); err != nil {
			b.Fatal(err)
		}
	}
}
