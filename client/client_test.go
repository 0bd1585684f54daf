package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"

	"github.com/kvnode/kvnode/client"
	"github.com/kvnode/kvnode/cluster"
)

func dial(t testing.TB, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.Dial(t.Context(), addr, opts...)
	if err != nil {
		t.Fatalf("Dial(%s): %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestClient_RoundTrip(t *testing.T) {
	c := dial(t, startServer(t))
	ctx := t.Context()

	expiry := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	err := c.Set(ctx, "default",
		client.Item{Key: "a", Value: []byte("alpha")},
		client.Item{Key: "empty", Value: nil},
		client.Item{Key: "t", Value: []byte("timed")}.WithExpiry(expiry),
	)
	if err != nil {
		t.Fatalf("Set: %v", err)
	}

	vals, err := c.MGet(ctx, "default", "a", "empty", "t", "missing")
	if err != nil {
		t.Fatalf("MGet: %v", err)
	}
	want := map[string][]byte{"a": []byte("alpha"), "empty": {}, "t": []byte("timed")}
	if len(vals) != len(want) {
		t.Fatalf("MGet = %q, want %q", vals, want)
	}
	for k, v := range want {
		got, ok := vals[k]
		if !ok || !bytes.Equal(got, v) || got == nil {
			t.Errorf("MGet[%q] = %q (present %v), want %q", k, got, ok, v)
		}
	}

	has, err := c.Has(ctx, "default", "a", "missing", "t")
	if err != nil {
		t.Fatalf("Has: %v", err)
	}
	slices.Sort(has)
	if !slices.Equal(has, []string{"a", "t"}) {
		t.Errorf("Has = %q, want [a t]", has)
	}

	ttls, err := c.TTL(ctx, "default", "a", "t", "missing")
	if err != nil {
		t.Fatalf("TTL: %v", err)
	}
	if len(ttls) != 2 || ttls["a"] != "" || ttls["t"] != client.FormatTimeout(expiry) {
		t.Errorf("TTL = %q, want a:\"\" t:%q", ttls, client.FormatTimeout(expiry))
	}

	later := client.FormatTimeout(expiry.Add(time.Hour))
	if err := c.MExpire(ctx, "default", client.Item{Key: "a", Timeout: later}, client.Item{Key: "missing", Timeout: later}); err != nil {
		t.Fatalf("MExpire: %v", err)
	}
	ttls, err = c.TTL(ctx, "default", "a", "missing")
	if err != nil || len(ttls) != 1 || ttls["a"] != later {
		t.Errorf("TTL after MExpire = %q, %v; want a:%q only", ttls, err, later)
	}

	if err := c.Delete(ctx, "default", "a", "missing"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if has, err := c.Has(ctx, "default", "a", "t"); err != nil || !slices.Equal(has, []string{"t"}) {
		t.Errorf("Has after Delete = %q, %v; want [t]", has, err)
	}

	if err := c.Clear(ctx, "default"); err != nil {
		t.Fatalf("Clear: %v", err)
	}
	if vals, err := c.MGet(ctx, "default", "t", "empty"); err != nil || len(vals) != 0 {
		t.Errorf("MGet after Clear = %q, %v; want nothing", vals, err)
	}
}

func TestClient_UnixSocket(t *testing.T) {
	addr := startServerOn(t, "unix://"+filepath.Join(t.TempDir(), "kv.sock"))
	if !strings.HasPrefix(addr, "unix:///") {
		t.Fatalf("server address %q, want unix:///...", addr)
	}
	c := dial(t, addr)
	if err := c.Set(t.Context(), "default", client.Item{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatalf("Set over a unix socket: %v", err)
	}
	if vals, err := c.MGet(t.Context(), "default", "k"); err != nil || string(vals["k"]) != "v" {
		t.Errorf("MGet over a unix socket = %q, %v", vals, err)
	}
}

func TestClient_ExpiredKeysAreGone(t *testing.T) {
	c := dial(t, startServer(t))
	ctx := t.Context()
	if err := c.Set(ctx, "default", client.Item{Key: "gone", Value: []byte("x")}.WithTTL(-time.Second)); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if vals, err := c.MGet(ctx, "default", "gone"); err != nil || len(vals) != 0 {
		t.Errorf("MGet of a key set with a past expiry = %q, %v; want nothing", vals, err)
	}
}

func TestClient_ServerErrors(t *testing.T) {
	c := dial(t, startServer(t))
	ctx := t.Context()

	_, err := c.MGet(ctx, "ghost", "k")
	var se *client.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("MGet on unknown storage: %v (%T), want *ServerError", err, err)
	}
	if se.Method != client.MethodMGet || se.Text != "rpc_mget: no such storage: ghost" {
		t.Errorf("ServerError = %+v", se)
	}
	if !client.IsNoSuchStorage(err) || client.IsUnknownOutcome(err) || client.IsNotSupported(err) {
		t.Errorf("classification of %v: nosuch %v unknown %v notsupported %v", err,
			client.IsNoSuchStorage(err), client.IsUnknownOutcome(err), client.IsNotSupported(err))
	}

	err = c.Set(ctx, "default", client.Item{Key: "ok", Value: []byte("1")}, client.Item{Key: " ", Value: []byte("2")})
	if !errors.As(err, &se) || !strings.Contains(se.Text, "key can't be empty string") {
		t.Fatalf("Set with a blank key: %v, want a ServerError about the key", err)
	}
	if vals, err := c.MGet(ctx, "default", "ok"); err != nil || len(vals) != 0 {
		t.Errorf("a refused Set wrote %q (%v): a batch must be all or nothing", vals, err)
	}

	err = c.Call(ctx, "kv.Nope", &kvv1.Request{Storage: "default"}, new(kvv1.Response))
	if !client.IsNotSupported(err) {
		t.Errorf("unknown method: %v, want IsNotSupported", err)
	}
	// The connection survives server errors.
	if err := c.Set(ctx, "default", client.Item{Key: "after", Value: []byte("1")}); err != nil {
		t.Errorf("Set after server errors: %v", err)
	}
}

func TestClient_ConcurrentCallsShareConnections(t *testing.T) {
	c := dial(t, startServer(t), client.WithPoolSize(2))
	ctx := t.Context()
	const workers, perWorker = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				k := fmt.Sprintf("w%d-%d", w, i)
				if err := c.Set(ctx, "default", client.Item{Key: k, Value: []byte(k)}); err != nil {
					errs <- err
					return
				}
				vals, err := c.MGet(ctx, "default", k)
				if err != nil {
					errs <- err
					return
				}
				if string(vals[k]) != k {
					errs <- fmt.Errorf("MGet(%s) = %q", k, vals[k])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClient_Closed(t *testing.T) {
	c := dial(t, startServer(t))
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := c.Has(t.Context(), "default", "k"); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Has after Close: %v, want ErrClosed", err)
	}
}

func TestDial_Errors(t *testing.T) {
	for _, addr := range []string{"http://x:1", "nocolon", "unix://"} {
		if _, err := client.Dial(t.Context(), addr); !errors.Is(err, client.ErrBadAddress) {
			t.Errorf("Dial(%q): %v, want ErrBadAddress", addr, err)
		}
	}
	// A port nothing listens on: bind one and close it again.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, err = client.Dial(t.Context(), addr)
	if !errors.Is(err, client.ErrDial) || client.IsUnknownOutcome(err) {
		t.Errorf("Dial(%s) with nothing listening: %v, want ErrDial", addr, err)
	}
}

func TestParseAddr(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://127.0.0.1:6001":    "tcp 127.0.0.1:6001",
		"127.0.0.1:6001":          "tcp 127.0.0.1:6001",
		"unix:///run/kvnode.sock": "unix /run/kvnode.sock",
	} {
		n, a, err := client.ParseAddr(in)
		if err != nil || n+" "+a != want {
			t.Errorf("ParseAddr(%q) = %q %q %v, want %q", in, n, a, err, want)
		}
	}
}

// TestClient_DeadlineOnSilentServer talks to a peer that accepts and reads
// but never answers: the call must return at its deadline as an unknown
// outcome, and once the abandon grace passes without a reply the
// connection is replaced.
func TestClient_DeadlineOnSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var wg sync.WaitGroup // the accept loop, and one reader per connection
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			wg.Go(func() {
				_, _ = io.Copy(io.Discard, nc)
				_ = nc.Close()
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	c := dial(t, ln.Addr().String(), client.WithPoolSize(1), client.WithAbandonGrace(50*time.Millisecond))

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err = c.Set(ctx, "default", client.Item{Key: "k", Value: []byte("v")})
	if !client.IsUnknownOutcome(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Set on a silent server: %v, want an unknown outcome from the deadline", err)
	}

	// The next call after the grace period redials: the listener sees a
	// second connection.
	deadline := time.Now().Add(5 * time.Second)
	for accepted.Load() < 2 && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		_, err := c.Has(ctx, "default", "k")
		cancel()
		if err != nil && !client.IsUnknownOutcome(err) {
			t.Fatalf("Has on a silent server: %v, want an unknown outcome", err)
		}
	}
	if n := accepted.Load(); n < 2 {
		t.Errorf("connections accepted = %d, want a redial after the abandon grace", n)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestClient_ReconnectsAfterConnectionLoss cuts every connection between
// client and server with a proxy: calls in between may fail, but only as
// unknown outcomes, and the client recovers on fresh connections.
func TestClient_ReconnectsAfterConnectionLoss(t *testing.T) {
	p := startProxy(t, startServer(t))
	c := dial(t, p.addr(), client.WithPoolSize(2))
	ctx := t.Context()
	if err := c.Set(ctx, "default", client.Item{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	p.cut()
	deadline := time.Now().Add(5 * time.Second)
	recovered := 0
	for recovered < 4 && time.Now().Before(deadline) { // every pooled connection, twice
		vals, err := c.MGet(ctx, "default", "k")
		switch {
		case err == nil && string(vals["k"]) == "v":
			recovered++
		case err == nil:
			t.Fatalf("MGet = %q", vals)
		case !client.IsUnknownOutcome(err):
			t.Fatalf("MGet after a cut: %v, want success or an unknown outcome", err)
		}
	}
	if recovered < 4 {
		t.Errorf("client did not recover after the connections were cut")
	}
}

// proxy forwards TCP connections to a server and can cut them all.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	_, taddr, err := client.ParseAddr(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	p.wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", taddr)
			if err != nil {
				_ = in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(out, in); _ = out.Close() })
			p.wg.Go(func() { _, _ = io.Copy(in, out); _ = in.Close() })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return "tcp://" + p.ln.Addr().String() }

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func BenchmarkClient_MGet(b *testing.B) {
	c := dial(b, startServer(b), client.WithPoolSize(4))
	ctx := b.Context()
	if err := c.Set(ctx, "default", client.Item{Key: "k", Value: bytes.Repeat([]byte("v"), 100)}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(8) // enough requests in flight to measure throughput, not latency
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.MGet(ctx, "default", "k"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkClient_Set(b *testing.B) {
	c := dial(b, startServer(b), client.WithPoolSize(4))
	ctx := b.Context()
	item := client.Item{Key: "k", Value: bytes.Repeat([]byte("v"), 100)}
	b.ReportAllocs()
	b.SetParallelism(8) // enough requests in flight to measure throughput, not latency
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Set(ctx, "default", item); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestIsNoLeader reads the texts a cluster node sends (rpc renders a
// store's error as "<op>: <error>"), built from the cluster's own sentinels
// so that a reworded sentinel fails here rather than silently turning a
// safe retry into an error shown to PHP.
func TestIsNoLeader(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"rpc_set: " + cluster.ErrNoLeader.Error() + " (no leader known for 1s)", true},
		{"rpc_mget: " + cluster.ErrNotLinearizable.Error() + " (context deadline exceeded)", true},
		{"rpc_set: " + cluster.ErrOutcomeUnknown.Error() + " (leader n1: " + cluster.ErrNoLeader.Error() + ")", false},
		{"rpc_set: " + cluster.ErrShutdown.Error(), false},
		{"rpc_mget: no such storage: ghost", false},
	} {
		err := error(&client.ServerError{Method: client.MethodSet, Text: tc.text})
		if got := client.IsNoLeader(err); got != tc.want {
			t.Errorf("IsNoLeader(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
	if client.IsNoLeader(fmt.Errorf("kv.Set: %w: %s", client.ErrUnknownOutcome, cluster.ErrNoLeader)) {
		t.Error("IsNoLeader took a transport error for a server's refusal")
	}
}
