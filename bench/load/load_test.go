package load

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvnode/kvnode/rpc/rpctest"
)

// defaults is the run kvnode bench's flag defaults describe, against addr.
func defaults(addr string) Config {
	return Config{RPC: addr, Storage: "default", Conns: 16, Duration: 10 * time.Second, Op: OpMGet, Keys: 1,
		Size: 100, Keyspace: 100_000, Warmup: time.Second, Preload: true, PreloadBatch: 100}
}

// run runs cfg and returns the result (zero on failure), the progress
// lines and the error.
func run(t *testing.T, ctx context.Context, cfg Config) (Result, string, error) {
	t.Helper()
	var progress bytes.Buffer
	if cfg.Progress == nil {
		cfg.Progress = &progress
	}
	res, err := Run(ctx, cfg)
	if res == nil {
		return Result{}, progress.String(), err
	}
	return *res, progress.String(), err
}

func TestBench_MixedAndMultiKeySet(t *testing.T) {
	addr := rpctest.ServeMemory(t, "")
	cfg := defaults(addr)
	cfg.Duration, cfg.Total, cfg.Conns, cfg.Warmup, cfg.Keyspace, cfg.Op, cfg.Keys, cfg.TTL = 0, 300, 3, 0, 500, OpMixed, 2, time.Minute
	res, stderr, err := run(t, t.Context(), cfg)
	if err != nil {
		t.Fatalf("bench mixed: %v\nstderr: %s", err, stderr)
	}
	set, mget := res.Ops["set"], res.Ops["mget"]
	if set.Requests == 0 || mget.Requests == 0 || set.Requests+mget.Requests != 300 {
		t.Errorf("mixed: set %d + mget %d requests, want both, 300 in all", set.Requests, mget.Requests)
	}
	if res.Total.Keys != 600 || res.Total.Errors != 0 {
		t.Errorf("mixed total = %+v, want 600 keys and no errors", res.Total)
	}
	if mget.Hits == nil || *mget.Hits != mget.Keys {
		t.Errorf("mixed mget hits %v of %d keys, want all (preloaded)", mget.Hits, mget.Keys)
	}

	cfg = defaults(addr)
	cfg.Duration, cfg.Total, cfg.Conns, cfg.Warmup, cfg.Keyspace, cfg.Op, cfg.Keys, cfg.Size, cfg.Preload = 0, 50, 2, 0, 100, OpSet, 3, 10, false
	res, _, err = run(t, t.Context(), cfg)
	if err != nil || res.Total.Requests != 50 || res.Total.Keys != 150 || res.Preloaded != 0 {
		t.Errorf("set: %v, %+v, preloaded %d; want 50 requests, 150 keys, no preload", err, res.Total, res.Preloaded)
	}
}

func TestBench_ErrorsAreCounted(t *testing.T) {
	addr := rpctest.ServeMemory(t, "")
	cfg := defaults(addr)
	cfg.Storage, cfg.Duration, cfg.Total, cfg.Conns, cfg.Warmup, cfg.Op, cfg.Preload = "ghost", 0, 20, 2, 0, OpSet, false
	res, _, err := run(t, t.Context(), cfg)
	if err != nil || res.Total.Errors != 20 || !strings.Contains(res.FirstError, "no such storage") {
		t.Errorf("bench on an unknown storage: err %v, %+v, first %q; want 20 errors", err, res.Total, res.FirstError)
	}
	cfg = defaults(addr)
	cfg.Storage, cfg.Duration, cfg.Total, cfg.Op = "ghost", 0, 5, OpHas
	if _, _, err := run(t, t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "preload") {
		t.Errorf("preload into an unknown storage: %v, want a preload error", err)
	}
}

func TestBench_DurationAndInterrupt(t *testing.T) {
	addr := rpctest.ServeMemory(t, "")
	cfg := defaults(addr)
	cfg.Duration, cfg.Warmup, cfg.Conns, cfg.Keyspace, cfg.Op = 300*time.Millisecond, 100*time.Millisecond, 2, 100, OpHas
	res, stderr, err := run(t, t.Context(), cfg)
	if err != nil || res.Total.Requests == 0 || res.Interrupted {
		t.Errorf("-d run: %v, %+v, interrupted %v", err, res.Total, res.Interrupted)
	}
	if strings.Contains(stderr, "\r") {
		t.Errorf("progress to a non-terminal must be plain lines, got %q", stderr)
	}

	// A parent context ending (Ctrl-C) stops a long run early, and the
	// partial result is still printed.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	cfg = defaults(addr)
	cfg.Duration, cfg.Warmup, cfg.Conns, cfg.Keyspace = time.Hour, 0, 2, 100
	res, _, err = run(t, ctx, cfg)
	if err != nil || !res.Interrupted || res.Total.Requests == 0 || res.Total.Errors != 0 {
		t.Errorf("interrupted run: %v, interrupted %v, %+v", err, res.Interrupted, res.Total)
	}
}

// TestBench_SilentServer runs against a peer that accepts and reads but
// never answers: neither the run nor the preload may hang.
func TestBench_SilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { _, _ = io.Copy(io.Discard, nc); _ = nc.Close() })
		}
	})
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	addr := "tcp://" + ln.Addr().String()

	cfg := defaults(addr)
	cfg.Duration, cfg.Warmup, cfg.Conns, cfg.Op, cfg.Preload, cfg.Progress = 100*time.Millisecond, 0, 2, OpSet, false, io.Discard
	res, _, err := run(t, t.Context(), cfg)
	if err != nil || res.Total.Requests != 0 || res.Interrupted {
		t.Errorf("run against a silent server: %v, %+v, interrupted %v; want an empty, uninterrupted result", err, res.Total, res.Interrupted)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	cfg = defaults(addr)
	cfg.Duration, cfg.Conns, cfg.Progress = time.Hour, 2, io.Discard
	if _, _, err := run(t, ctx, cfg); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("preload against a silent server, interrupted: %v, want the context's error", err)
	}
}

func TestBench_TextOutput(t *testing.T) {
	addr := rpctest.ServeMemory(t, "")
	cfg := defaults(addr)
	cfg.Duration, cfg.Total, cfg.Warmup, cfg.Keyspace, cfg.Op = 0, 50, 0, 50, OpMixed
	res, _, err := run(t, t.Context(), cfg)
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	var out bytes.Buffer
	if err := res.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kvnode bench mixed", "mget ", "set ", "total ", "p99.9", "preloaded 50 keys"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRun_RefusesWhatCannotRun(t *testing.T) {
	for name, tweak := range map[string]func(*Config){
		"no connections":  func(c *Config) { c.Conns = 0 },
		"empty keyspace":  func(c *Config) { c.Keyspace, c.Keys = 0, 0 },
		"keys > keyspace": func(c *Config) { c.Keys = c.Keyspace + 1 },
		"unknown op":      func(c *Config) { c.Op = "scan" },
		"no end":          func(c *Config) { c.Duration, c.Total = 0, 0 },
	} {
		cfg := defaults("tcp://127.0.0.1:1")
		tweak(&cfg)
		if _, err := Run(t.Context(), cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

func TestLatencyHist_Buckets(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 123456, 1 << 40, math.MaxInt64} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d out of range", v, i)
		}
		up := histUpper(i)
		if up < v || (i > 0 && histUpper(i-1) >= v) {
			t.Errorf("value %d in bucket %d whose range ends at %d (previous %d)", v, i, up, histUpper(i-1))
		}
		if v >= histSub && float64(up-v) > float64(v)/64 {
			t.Errorf("bucket of %d is %d wide: more than 1/64", v, up-v)
		}
	}
}

func TestLatencyHist_Quantiles(t *testing.T) {
	var a, b latencyHist
	for i := 1; i <= 10000; i++ { // 1µs .. 10ms, uniform
		h := &a
		if i%2 == 0 {
			h = &b
		}
		h.record(time.Duration(i) * time.Microsecond)
	}
	a.merge(&b)
	for q, want := range map[float64]time.Duration{
		0.5: 5 * time.Millisecond, 0.9: 9 * time.Millisecond, 0.99: 9900 * time.Microsecond, 1: 10 * time.Millisecond,
	} {
		got := a.quantile(q)
		if diff := math.Abs(float64(got-want)) / float64(want); diff > 1.0/64 {
			t.Errorf("quantile(%v) = %v, want %v within 1/64", q, got, want)
		}
	}
	if a.total != 10000 || a.min != uint64(time.Microsecond) || a.max != uint64(10*time.Millisecond) {
		t.Errorf("merged: total %d min %d max %d", a.total, a.min, a.max)
	}
	var empty latencyHist
	if s := empty.summary(); s != (LatencySummary{}) {
		t.Errorf("empty summary = %+v", s)
	}
}
