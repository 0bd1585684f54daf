package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

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

func in(sec float64) int64 { return time.Now().Add(time.Duration(sec * float64(time.Second))).UnixNano() }

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

// countHook counts client calls that reach the network: a single command
// or a whole pipeline is one round trip.
type countHook struct{ cmds, pipelines atomic.Int64 }

func (h *countHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *countHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.cmds.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.pipelines.Add(1)
		return next(ctx, cmds)
	}
}

// commandCalls reads how often redis executed cmd, from INFO commandstats.
func commandCalls(t *testing.T, c goredis.UniversalClient, cmd string) int {
	t.Helper()
	info, err := c.Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls=")
		if ok {
			n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			if err != nil {
				t.Fatalf("parse %q: %v", line, err)
			}
			return n
		}
	}
	return 0
}

func TestStore_HasAndMGetAreOneRoundTrip(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	keys := make([]string, 50)
	items := make([]drivers.Item, 0, 25)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
		if i%2 == 0 {
			items = append(items, drivers.Item{Key: keys[i], Value: []byte("v")})
		}
	}
	mustSet(t, s, items...)
	h := &countHook{}
	s.client.AddHook(h)

	mgets := commandCalls(t, s.client, "mget")
	h.cmds.Store(0)
	got, err := s.MGet(ctx, keys)
	if err != nil || len(got) != 25 {
		t.Fatalf("MGet = %d items, %v; want 25", len(got), err)
	}
	if c, p := h.cmds.Load(), h.pipelines.Load(); c != 1 || p != 0 {
		t.Fatalf("MGet of 50 keys made %d commands and %d pipelines, want one command", c, p)
	}
	if n := commandCalls(t, s.client, "mget") - mgets; n != 1 {
		t.Fatalf("redis ran MGET %d times for one MGet, want 1", n)
	}

	h.cmds.Store(0)
	found, err := s.Has(ctx, keys)
	if err != nil || len(found) != 25 {
		t.Fatalf("Has = %d keys, %v; want 25", len(found), err)
	}
	if c, p := h.cmds.Load(), h.pipelines.Load(); c != 0 || p != 1 {
		t.Fatalf("Has of 50 keys made %d commands and %d pipelines, want one pipeline", c, p)
	}
}

// blackhole accepts connections and never answers, like a hung server.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func TestStore_ContextEndsCallPromptly(t *testing.T) {
	s, err := New(Config{Addrs: []string{blackhole(t)}, ReadTimeout: time.Minute, WriteTimeout: time.Minute}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })

	for name, mk := range map[string]func() (context.Context, context.CancelFunc){
		"cancel": func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		},
		"deadline": func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), 50*time.Millisecond)
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := mk()
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := s.MGet(ctx, []string{"k"})
				done <- err
			}()
			// The guard is far below the one-minute read timeout: a call
			// that ignored its context would trip it.
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("MGet on a hung server = %v, want the context's error", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("MGet ignored its context on a hung server")
			}
		})
	}
}

func TestStore_IsLazy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	s, err := New(Config{Addrs: []string{addr}, MaxRetries: -1, DialTimeout: time.Second}, nil, nil)
	if err != nil {
		t.Fatalf("New with an unreachable server = %v, want success (connections are lazy)", err)
	}
	defer s.Close()
	if _, err := s.Has(t.Context(), []string{"k"}); err == nil {
		t.Fatal("Has against an unreachable server succeeded")
	}
}

func TestStore_Closed(t *testing.T) {
	s := newStore(t)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Has(t.Context(), []string{"k"}); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Has after Close = %v, want ErrClosed", err)
	}
	if err := s.Set(t.Context(), []drivers.Item{{Key: "k"}}); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Set after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
}

func TestStore_Spans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s, err := New(Config{Addrs: []string{testsvc.Redis(t)}}, tp, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, parent := tp.Tracer("test").Start(t.Context(), "kv:set")
	mustSetCtx := s.Set(ctx, []drivers.Item{{Key: "k", Value: []byte("v")}})
	parent.End()
	if mustSetCtx != nil {
		t.Fatalf("Set: %v", mustSetCtx)
	}
	var found bool
	for _, sp := range rec.Ended() {
		if sp.Name() == "redis:set" {
			found = true
			if sp.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Fatalf("redis:set span is not a child of the caller's span")
			}
		}
	}
	if !found {
		t.Fatal("no redis:set span recorded")
	}
}
