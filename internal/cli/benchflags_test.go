package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/bench/load"
)

// Most of kvnode bench is tested in bench/load; these tests cover the
// flags and what the command prints.

func runBenchJSON(t *testing.T, ctx context.Context, args ...string) (load.Result, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Bench(ctx, append(args, "--json"), &out, &errb)
	var res load.Result
	if out.Len() > 0 {
		if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
			t.Fatalf("bench output is not JSON: %v\n%s", jerr, out.String())
		}
	}
	return res, errb.String(), err
}

func TestBench_MGetCounts(t *testing.T) {
	addr := verbTestServer(t)
	res, stderr, err := runBenchJSON(t, t.Context(), "--rpc", addr, "-n", "200", "-c", "4",
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

func TestBench_Flags(t *testing.T) {
	for _, args := range [][]string{
		{"--op", "scan"}, {"-c", "0"}, {"--keys", "5", "--keyspace", "4"}, {"-d", "0"}, {"--size", "-1"}, {"extra"},
		{"--rpc", "ftp://x"},
	} {
		if _, err := parseBenchFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("bench %q: accepted", args)
		}
	}
	bf, err := parseBenchFlags([]string{"-n", "10", "--op", "set", "-q"}, &bytes.Buffer{})
	if err != nil || bf.cfg.Duration != 0 || bf.cfg.Total != 10 || bf.cfg.Preload || bf.cfg.Progress != nil {
		t.Errorf("-n alone: %+v %v; want no duration limit, no preload for set, no progress with -q", bf, err)
	}

	// Failed requests are reported and fail the command.
	addr := verbTestServer(t)
	res, _, err := runBenchJSON(t, t.Context(), "--rpc", addr, "--storage", "ghost", "-n", "20", "-c", "2",
		"--warmup", "0", "--op", "set", "-q")
	if err == nil || !strings.Contains(err.Error(), "20 of 20 requests failed") || res.Total.Errors != 20 {
		t.Errorf("bench on an unknown storage: err %v, %+v; want 20 failed requests and an error", err, res.Total)
	}
}
