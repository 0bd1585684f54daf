package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func runBenchJSON(t *testing.T, ctx context.Context, args ...string) (benchResult, error, string) {
	t.Helper()
	var out, errb bytes.Buffer
	err := runBench(ctx, append(args, "--json"), &out, &errb)
	var res benchResult
	if out.Len() > 0 {
		if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
			t.Fatalf("bench output is not JSON: %v\n%s", jerr, out.String())
		}
	}
	return res, err, errb.String()
}

func TestBench_MGetCounts(t *testing.T) {
	addr := verbTestServer(t)
	res, err, stderr := runBenchJSON(t, t.Context(), "--rpc", addr, "-n", "200", "-c", "4",
		"--warmup", "0", "--keyspace", "1000", "--op", "mget")
	if err != nil {
		t.Fatalf("bench: %v\nstderr: %s", err, stderr)
	}
	if res.Total.Requests != 200 || res.Total.Errors != 0 || res.Total.Keys != 200 {
		t.Errorf("total = %+v, want 200 requests, 200 keys, no errors", res.Total)
	}
	if res.Preloaded != 1000 {
		t.Errorf("preloaded = %d, want the whole keyspace", res.Preloaded)
	}
	mget := res.Ops["mget"]
	if mget.Requests != 200 || mget.Hits == nil || *mget.Hits != 200 {
		t.Errorf("mget = %+v, want 200 requests that all hit", mget)
	}
	l := mget.LatencyMicros
	if !(l.Min > 0 && l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("latency summary out of order: %+v", l)
	}
	if res.Interrupted || res.ElapsedS <= 0 || mget.RequestsPerS <= 0 {
		t.Errorf("interrupted %v, elapsed %v, rate %v", res.Interrupted, res.ElapsedS, mget.RequestsPerS)
	}
}

func TestBench_MixedAndMultiKeySet(t *testing.T) {
	addr := verbTestServer(t)
	res, err, stderr := runBenchJSON(t, t.Context(), "--rpc", addr, "-n", "300", "-c", "3",
		"--warmup", "0", "--keyspace", "500", "--op", "mixed", "--keys", "2", "--ttl", "1m")
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

	res, err, _ = runBenchJSON(t, t.Context(), "--rpc", addr, "-n", "50", "-c", "2",
		"--warmup", "0", "--keyspace", "100", "--op", "set", "--keys", "3", "--size", "10")
	if err != nil || res.Total.Requests != 50 || res.Total.Keys != 150 || res.Preloaded != 0 {
		t.Errorf("set: %v, %+v, preloaded %d; want 50 requests, 150 keys, no preload", err, res.Total, res.Preloaded)
	}
}

func TestBench_ErrorsAreCounted(t *testing.T) {
	addr := verbTestServer(t)
	res, err, _ := runBenchJSON(t, t.Context(), "--rpc", addr, "--storage", "ghost", "-n", "20", "-c", "2",
		"--warmup", "0", "--op", "set", "-q")
	if err == nil || res.Total.Errors != 20 || !strings.Contains(res.FirstError, "no such storage") {
		t.Errorf("bench on an unknown storage: err %v, %+v, first %q; want 20 errors", err, res.Total, res.FirstError)
	}
	if _, err, _ := runBenchJSON(t, t.Context(), "--rpc", addr, "--storage", "ghost", "-n", "5", "--op", "has"); err == nil ||
		!strings.Contains(err.Error(), "preload") {
		t.Errorf("preload into an unknown storage: %v, want a preload error", err)
	}
}

func TestBench_DurationAndInterrupt(t *testing.T) {
	addr := verbTestServer(t)
	res, err, stderr := runBenchJSON(t, t.Context(), "--rpc", addr, "-d", "300ms", "--warmup", "100ms",
		"-c", "2", "--keyspace", "100", "--op", "has")
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
	res, err, _ = runBenchJSON(t, ctx, "--rpc", addr, "-d", "1h", "--warmup", "0", "-c", "2", "--keyspace", "100")
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

	res, err, _ := runBenchJSON(t, t.Context(), "--rpc", addr, "-d", "100ms", "--warmup", "0", "-c", "2", "--op", "set", "-q")
	if err != nil || res.Total.Requests != 0 || res.Interrupted {
		t.Errorf("run against a silent server: %v, %+v, interrupted %v; want an empty, uninterrupted result", err, res.Total, res.Interrupted)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err, _ := runBenchJSON(t, ctx, "--rpc", addr, "-d", "1h", "-c", "2", "--op", "mget", "-q"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("preload against a silent server, interrupted: %v, want the context's error", err)
	}
}

func TestBench_TextOutput(t *testing.T) {
	addr := verbTestServer(t)
	var out, errb bytes.Buffer
	if err := runBench(t.Context(), []string{"--rpc", addr, "-n", "50", "--warmup", "0", "--keyspace", "50", "--op", "mixed"}, &out, &errb); err != nil {
		t.Fatalf("bench: %v", err)
	}
	for _, want := range []string{"kvnode bench mixed", "mget ", "set ", "total ", "p99.9", "preloaded 50 keys"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBench_Flags(t *testing.T) {
	for _, args := range [][]string{
		{"--op", "scan"}, {"-c", "0"}, {"--keys", "5", "--keyspace", "4"}, {"-d", "0"}, {"--size", "-1"}, {"extra"},
		{"--rpc", "ftp://x"},
	} {
		if _, err := parseBenchFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("bench %q: accepted", args)
		}
	}
	cfg, err := parseBenchFlags([]string{"-n", "10", "--op", "set"}, &bytes.Buffer{})
	if err != nil || cfg.duration != 0 || cfg.total != 10 || cfg.preload {
		t.Errorf("-n alone: %+v %v; want no duration limit and no preload for set", cfg, err)
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
	if s := empty.summary(); s != (latencySummary{}) {
		t.Errorf("empty summary = %+v", s)
	}
}
