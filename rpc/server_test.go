package rpc

import (
	"context"
	"errors"
	"net"
	netrpc "net/rpc"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
)

func newGate(t *testing.T) *gateStore {
	return &gateStore{Store: newMemory(t), blocked: make(chan struct{}), open: make(chan struct{})}
}

func TestServer_GracefulShutdown(t *testing.T) {
	g := newGate(t)
	srv := startServer(t, Config{}, nil, Storage{Name: "slow", Driver: redisDriver(), Store: g})
	busy := dialClient(t, srv.Server)
	idle := dialRaw(t, srv.Server)

	reply := make(chan string, 1)
	go func() {
		_, e := call(t, busy, "kv.Has", req("slow", "block"))
		reply <- e
	}()
	<-g.blocked

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(t.Context()) }()
	// No new connections; the idle one is closed at once.
	waitFor(t, "the listener to close", func() bool {
		nc, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second)
		if err == nil {
			_ = nc.Close()
		}
		return err != nil
	})
	expectClosed(t, idle)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	// The request in flight finishes and is answered.
	close(g.open)
	if e := <-reply; e != "" {
		t.Fatalf("in-flight call: %q", e)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := srv.Listen(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Listen after Shutdown: %v", err)
	}
}

func TestServer_HardShutdown(t *testing.T) {
	g := newGate(t)
	srv := startServer(t, Config{}, nil, Storage{Name: "slow", Driver: redisDriver(), Store: g})
	c := dialClient(t, srv.Server)
	reply := make(chan error, 1)
	go func() { reply <- c.Call("kv.Has", req("slow", "block"), &kvv1.Response{}) }()
	<-g.blocked

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	// The Store saw its context cancelled, and the client lost the
	// connection (or got the cancellation as an error reply).
	if err := <-reply; err == nil {
		t.Fatal("call blocked across a hard shutdown succeeded")
	}
}

func TestServer_RequestTimeout(t *testing.T) {
	g := newGate(t)
	srv := startServer(t, Config{RequestTimeout: 50 * time.Millisecond}, nil, Storage{Name: "slow", Driver: redisDriver(), Store: g})
	c := dialClient(t, srv.Server)
	if _, e := call(t, c, "kv.Has", req("slow", "block")); e != "rpc_has: context deadline exceeded" {
		t.Fatalf("blocked call: %q", e)
	}
}

func TestServer_IdleTimeout(t *testing.T) {
	srv := startServer(t, Config{IdleTimeout: 50 * time.Millisecond}, nil,
		Storage{Name: "default", Driver: memory.Driver(), Store: newMemory(t), Inline: true})
	nc := dialRaw(t, srv.Server)
	if _, err := nc.Write(rawFrame(0x80, 1, "kv.Has", marshal(t, req("default", "k")))); err != nil {
		t.Fatal(err)
	}
	readReply(t, nc)
	expectClosed(t, nc)
}

func TestServer_FrameTimeout(t *testing.T) {
	srv := startServer(t, Config{FrameTimeout: 50 * time.Millisecond}, nil,
		Storage{Name: "default", Driver: memory.Driver(), Store: newMemory(t), Inline: true})
	nc := dialRaw(t, srv.Server)
	// Half a frame, then nothing.
	if _, err := nc.Write(rawFrame(0x80, 1, "kv.Has", marshal(t, req("default", "k")))[:25]); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, nc)
	waitFor(t, "the log line", func() bool { return strings.Contains(srv.log.String(), "frame not complete after 50ms") })
}

func TestServer_Tracing(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	st := drivers.NewStandalone(memory.New(), drivers.StandaloneOptions{Driver: "memory", SweepInterval: -1, Tracer: tp.Tracer("memory")})
	t.Cleanup(func() { _ = st.Close() })
	srv := startServer(t, Config{}, tp, Storage{Name: "default", Driver: memory.Driver(), Store: st, Inline: true})
	c := dialClient(t, srv.Server)

	mustCall(t, c, "kv.Set", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("a", "1", ""), item("b", "2", "")}})
	call(t, c, "kv.MGet", req("ghost", "a"))

	spans := rec.Ended()
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = s
	}
	kvSet, drvSet, kvGet := byName["kv:set"], byName["memory:set"], byName["kv:mget"]
	if kvSet == nil || drvSet == nil || kvGet == nil {
		t.Fatalf("spans: %v", names(spans))
	}
	if drvSet.Parent().SpanID() != kvSet.SpanContext().SpanID() {
		t.Error("the driver span is not a child of kv:set")
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, a := range kvSet.Attributes() {
		attrs[a.Key] = a.Value
	}
	if attrs["kv.storage"].AsString() != "default" || attrs["kv.keys"].AsInt64() != 2 {
		t.Errorf("kv:set attributes: %v", kvSet.Attributes())
	}
	if kvGet.Status().Code != codes.Error || len(kvGet.Events()) == 0 || kvGet.Events()[0].Name != "exception" {
		t.Errorf("kv:mget error not recorded: %v %v", kvGet.Status(), kvGet.Events())
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

type countingObserver struct{ calls chan string }

func (o countingObserver) ObserveCall(method, storage string, _ time.Duration, err error) {
	o.calls <- method + " " + storage + " " + map[bool]string{true: "ok", false: "error"}[err == nil]
}

func TestServer_Observer(t *testing.T) {
	obs := countingObserver{calls: make(chan string, 4)}
	srv := startServer(t, Config{Observer: obs}, nil, Storage{Name: "default", Driver: memory.Driver(), Store: newMemory(t), Inline: true})
	c := dialClient(t, srv.Server)
	mustCall(t, c, "kv.Has", req("default", "a"))
	call(t, c, "kv.TTL", req("ghost", "a"))
	for _, want := range []string{"kv.Has default ok", "kv.TTL ghost error"} {
		if got := <-obs.calls; got != want {
			t.Errorf("observed %q, want %q", got, want)
		}
	}
}

// holdStore holds every Has until open is closed, counting the calls that
// reached it.
type holdStore struct {
	drivers.Store
	in   atomic.Int32
	open chan struct{}
}

func (h *holdStore) Has(ctx context.Context, keys []string) ([]string, error) {
	h.in.Add(1)
	select {
	case <-h.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.Store.Has(ctx, keys)
}

// A connection keeps the workers that served its requests (conn.worker)
// for the next ones, and they leave with it: once its client is gone the
// server holds no more goroutines than before, well within workerIdle.
func TestServer_WorkersLeaveWithTheirConnection(t *testing.T) {
	hold := &holdStore{Store: newMemory(t), open: make(chan struct{})}
	srv := startServer(t, Config{}, nil, Storage{Name: "slow", Driver: redisDriver(), Store: hold})
	base := runtime.NumGoroutine()

	c := dialClient(t, srv.Server)
	const calls = 16
	done := make(chan *netrpc.Call, calls)
	for range calls {
		c.Go("kv.Has", req("slow", "k"), &kvv1.Response{}, done)
	}
	waitFor(t, "every call to reach the store", func() bool { return hold.in.Load() == calls })
	close(hold.open)
	for range calls {
		if call := <-done; call.Error != nil {
			t.Fatal(call.Error)
		}
	}
	mustCall(t, c, "kv.Has", req("slow", "k")) // an idle worker takes it
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(workerIdle / 2)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left after the connection closed, had %d before it", runtime.NumGoroutine(), base)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// whereStore records, per call, whether it ran on a connection's reader
// goroutine (served inline) rather than on a worker.
type whereStore struct {
	drivers.Store
	onReader chan bool
}

func onReader() bool { return strings.Contains(string(debug.Stack()), "(*conn).readLoop") }

func (w *whereStore) Has(ctx context.Context, keys []string) ([]string, error) {
	w.onReader <- onReader()
	return w.Store.Has(ctx, keys)
}

func (w *whereStore) Set(ctx context.Context, items []drivers.Item) error {
	w.onReader <- onReader()
	return w.Store.Set(ctx, items)
}

// Storage.ReadsInline is asked per read: a read it calls ready runs on
// the connection's reader, one it does not on a worker; a write always
// goes to a worker, since it may wait for other nodes.
func TestServer_ReadsInlineOnlyWhenReady(t *testing.T) {
	w := &whereStore{Store: newMemory(t), onReader: make(chan bool, 1)}
	var ready atomic.Bool
	srv := startServer(t, Config{}, nil, Storage{Name: "repl", Driver: memory.Driver(), Store: w, ReadsInline: ready.Load})
	c := dialClient(t, srv.Server)
	for _, tc := range []struct {
		ready  bool
		method string
		inline bool
	}{
		{true, "kv.Has", true},
		{false, "kv.Has", false},
		{true, "kv.Set", false},
	} {
		ready.Store(tc.ready)
		in := req("repl", "k")
		if tc.method == "kv.Set" {
			in = &kvv1.Request{Storage: "repl", Items: []*kvv1.Item{{Key: "k", Value: []byte("v")}}}
		}
		mustCall(t, c, tc.method, in)
		if got := <-w.onReader; got != tc.inline {
			t.Errorf("%s with reads ready=%v: served on the reader %v, want %v", tc.method, tc.ready, got, tc.inline)
		}
	}
}
