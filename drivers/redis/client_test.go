package redis

import (
	"context"
	"errors"
	"net"
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
		// The stand-in server's teardown: none of it is under test.
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
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
	if err := l.Close(); err != nil { // nothing listens there any more
		t.Fatal(err)
	}
	s, err := New(Config{Addrs: []string{addr}, MaxRetries: -1, DialTimeout: time.Second}, nil, nil)
	if err != nil {
		t.Fatalf("New with an unreachable server = %v, want success (connections are lazy)", err)
	}
	defer closeStore(t, s)
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
	defer closeStore(t, s)
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

func BenchmarkStore_MGet50(b *testing.B) {
	s, err := New(Config{Addrs: []string{testsvc.Redis(b)}}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer closeStore(b, s)
	keys := make([]string, 50)
	items := make([]drivers.Item, 50)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
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
	s, err := New(Config{Addrs: []string{testsvc.Redis(b)}}, nil, nil)
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
