package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/config"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/rpc"
)

var opsLine = regexp.MustCompile(`ops=(\S+)`)

// opsURL is the first ops address from the start-up line.
func opsURL(t *testing.T, r *running) string {
	t.Helper()
	m := opsLine.FindStringSubmatch(r.stderr.String())
	if m == nil || m[1] == "off" {
		t.Fatalf("no ops address in the start-up line:\n%s", r.stderr)
	}
	return strings.Split(m[1], ",")[0]
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape parses /metrics as Prometheus text; a parse failure fails the test.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// metric returns the value (a histogram's count) of the series of name
// with labels, or -1.
func metric(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func TestServe_OpsEndpointStandalone(t *testing.T) {
	t.Parallel()
	r := startServe(t, config.Options{File: writeConfig(t, `
version: "3"
rpc: {listen: "tcp://127.0.0.1:0"}
metrics: {address: "127.0.0.1:0"}
kv:
  default: {driver: memory, config: {}}
`)})
	base := opsURL(t, r)
	if code, _ := httpGet(t, base+"/health"); code != http.StatusOK {
		t.Fatalf("/health: %d", code)
	}
	if code, body := httpGet(t, base+"/ready"); code != http.StatusOK {
		t.Fatalf("/ready of a standalone node: %d %s", code, body)
	}
	before := scrape(t, base)
	if v := metric(before, "kvnode_storage_keys", "storage", "default", "driver", "memory"); v != 0 {
		t.Fatalf("keys before: %v", v)
	}
	if _, ok := before["kvnode_raft_term"]; ok {
		t.Fatal("raft metrics on a standalone node")
	}

	c := dialKV(t, r.addr)
	setAndGet(t, c, "default", "k", "v")
	err := c.Call("kv.MGet", &kvv1.Request{Storage: "ghost", Items: []*kvv1.Item{{Key: "k"}}}, &kvv1.Response{})
	if err == nil {
		t.Fatal("MGet on an unknown storage succeeded")
	}
	after := scrape(t, base)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"kvnode_rpc_requests_total", []string{"method", "kv.Set", "storage", "default"}, 1},
		{"kvnode_rpc_requests_total", []string{"method", "kv.MGet", "storage", "default"}, 1},
		{"kvnode_rpc_request_duration_seconds", []string{"method", "kv.Set", "storage", "default"}, 1},
		{"kvnode_rpc_errors_total", []string{"method", "kv.MGet", "storage", "", "kind", "no_such_storage"}, 1},
		{"kvnode_storage_keys", []string{"storage", "default"}, 1},
		{"kvnode_ready", nil, 1},
	} {
		if got := metric(after, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if v := metric(after, "kvnode_storage_bytes", "storage", "default"); v <= 0 {
		t.Errorf("bytes %v after a set", v)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// A one-node cluster served by serve: status, health, readiness, backups
// and the raft and state machine metrics, all through the real wiring.
func TestServe_OpsEndpointCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startServe(t, config.Options{File: writeConfig(t, fmt.Sprintf(`
version: "3"
rpc: {listen: "tcp://127.0.0.1:0"}
status: {address: "127.0.0.1:0"}
cluster:
  node_id: solo
  data_dir: %q
  raft: {bind: "127.0.0.1:0", heartbeat_timeout: 200ms, election_timeout: 200ms, leader_lease_timeout: 100ms}
kv:
  mem: {driver: memory, config: {}}
  bolt: {driver: boltdb, config: {file: bolt.db}}
`, filepath.Join(dir, "node")))})
	base := opsURL(t, r)
	if !poll(20*time.Second, func() bool { code, _ := httpGet(t, base+"/ready"); return code == http.StatusOK }) {
		_, body := httpGet(t, base+"/ready")
		t.Fatalf("never ready: %s", body)
	}
	mustVerb(t, "health", "--rpc", r.addr, "--ready")
	before := scrape(t, base)
	if v := metric(before, "kvnode_raft_state", "state", "leader"); v != 1 {
		t.Fatalf("raft state leader = %v", v)
	}
	if v := metric(before, "kvnode_raft_leader_changes_total"); v < 1 {
		t.Fatalf("leader changes %v", v)
	}

	c := dialKV(t, r.addr)
	for i := range 3 {
		setAndGet(t, c, "mem", fmt.Sprint("k", i), "v")
		setAndGet(t, c, "bolt", fmt.Sprint("k", i), "v")
	}
	file := filepath.Join(t.TempDir(), "b.kvn")
	mustVerb(t, "snapshot", "save", file, "--rpc", r.addr)

	after := scrape(t, base)
	grew := func(name string, labels ...string) {
		t.Helper()
		if b, a := metric(before, name, labels...), metric(after, name, labels...); a <= max(b, 0) {
			t.Errorf("%s%v did not grow: %v -> %v", name, labels, b, a)
		}
	}
	grew("kvnode_raft_commit_index")
	grew("kvnode_fsm_applied_index")
	grew("kvnode_fsm_applied_entries_total")
	grew("kvnode_fsm_apply_duration_seconds")
	grew("kvnode_raft_apply_latency_seconds")
	grew("kvnode_rpc_requests_total", "method", "kv.Set", "storage", "bolt")
	grew("kvnode_rpc_request_duration_seconds", "method", "kv.MGet", "storage", "mem")
	grew("kvnode_snapshots_total", "result", "ok")
	grew("kvnode_snapshot_duration_seconds")
	grew("kvnode_rpc_requests_total", "method", rpc.MethodSnapshotOpen)
	if v := metric(after, "kvnode_storage_keys", "storage", "bolt", "driver", "boltdb"); v != 3 {
		t.Errorf("bolt keys %v, want 3", v)
	}

	st := statusJSON(t, r.addr)
	if st["node_id"] != "solo" || st["role"] != cluster.RoleLeader || st["ready"] != true {
		t.Fatalf("status %v", st)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("serve: %v\n%s", err, r.stderr)
	}
}

func TestClassifyError(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]string{
		rpc.ErrUnknownStorage:                                                "no_such_storage",
		fmt.Errorf("x: %w", drivers.ErrEmptyKey):                             "bad_request",
		fmt.Errorf("x: %w", cluster.ErrNoLeader):                             "no_leader",
		fmt.Errorf("%w (%w)", cluster.ErrNoLeader, context.DeadlineExceeded): "no_leader",
		cluster.ErrOutcomeUnknown:                                            "outcome_unknown",
		cluster.ErrNotLinearizable:                                           "not_linearizable",
		cluster.ErrShutdown:                                                  "shutdown",
		context.DeadlineExceeded:                                             "timeout",
		errors.New("disk full"):                                              "other",
	} {
		if got := classifyError(err); got != want {
			t.Errorf("classifyError(%v) = %s, want %s", err, got, want)
		}
	}
}
