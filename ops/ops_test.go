package ops

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// startOps serves m on a loopback port until the test ends and returns the
// base URL.
func startOps(t *testing.T, m *Metrics, ready Readiness, addrs ...string) (*Server, string) {
	t.Helper()
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1:0"}
	}
	s, err := NewServer(addrs, m, ready, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, "http://" + s.Addrs()[0].String()
}

func get(t *testing.T, url string) (int, string) {
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

// scrape fetches /metrics and parses it as Prometheus text.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

// value returns the value of the series of family name whose labels
// include want, or -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
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
		for k, v := range want {
			if have[k] != v {
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

var errNoLeader = errors.New("no leader")

func TestMetrics_MoveWithCalls(t *testing.T) {
	m := NewMetrics(Options{
		Storages: []string{"mem"},
		Version:  "v9.9.9",
		Classify: func(err error) string {
			if errors.Is(err, errNoLeader) {
				return "no_leader"
			}
			return "other"
		},
	})
	_, base := startOps(t, m, nil)

	fams := scrape(t, base)
	if v := value(fams, "kvnode_build_info", map[string]string{"version": "v9.9.9"}); v != 1 {
		t.Fatalf("build info %v", v)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Fatal("no Go runtime metrics")
	}
	if _, ok := fams["kvnode_raft_term"]; ok {
		t.Fatal("raft gauges without a state function")
	}

	m.ObserveCall("kv.Set", "mem", time.Millisecond, nil)
	m.ObserveCall("kv.Set", "mem", 2*time.Millisecond, errNoLeader)
	// An unknown storage must not create a series of its own.
	m.ObserveCall("kv.MGet", "random-name-1", time.Millisecond, errors.New("no such storage"))
	m.ObserveApply(3, time.Millisecond)
	m.ObserveAppliedEntry(time.Millisecond)
	m.ObserveSnapshot(time.Second, nil)
	m.ObserveRestore(time.Second, errors.New("bad"))

	fams = scrape(t, base)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"kvnode_rpc_requests_total", map[string]string{"method": "kv.Set", "storage": "mem"}, 2},
		{"kvnode_rpc_request_duration_seconds", map[string]string{"method": "kv.Set", "storage": "mem"}, 2},
		{"kvnode_rpc_errors_total", map[string]string{"method": "kv.Set", "storage": "mem", "kind": "no_leader"}, 1},
		{"kvnode_rpc_requests_total", map[string]string{"method": "kv.MGet", "storage": ""}, 1},
		{"kvnode_rpc_errors_total", map[string]string{"method": "kv.MGet", "storage": "", "kind": "other"}, 1},
		{"kvnode_fsm_applied_entries_total", nil, 3},
		{"kvnode_fsm_apply_duration_seconds", nil, 1},
		{"kvnode_raft_apply_latency_seconds", nil, 1},
		{"kvnode_snapshots_total", map[string]string{"result": "ok"}, 1},
		{"kvnode_snapshot_duration_seconds", nil, 1},
		{"kvnode_snapshot_restores_total", map[string]string{"result": "error"}, 1},
	}
	for _, c := range checks {
		if got := value(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if strings.Contains(fams["kvnode_rpc_requests_total"].String(), "random-name-1") {
		t.Fatal("an unknown storage name became a label value")
	}
}

func TestMetrics_State(t *testing.T) {
	m := NewMetrics(Options{})
	var term atomic.Uint64
	term.Store(3)
	m.SetState(func() State {
		return State{
			Raft: &RaftState{State: "follower", HasLeader: true, Term: term.Load(), CommitIndex: 10,
				AppliedIndex: 10, FSMAppliedIndex: 9, LastLog: 11, LeaderChanges: 2},
			Storages: []StorageState{{Name: "mem", Driver: "memory", Keys: 5, Bytes: 50}},
			Gossip:   map[string]int{"alive": 2, "dead": 1},
			Ready:    true,
		}
	})
	_, base := startOps(t, m, nil)
	fams := scrape(t, base)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"kvnode_raft_term", nil, 3},
		{"kvnode_raft_commit_index", nil, 10},
		{"kvnode_fsm_applied_index", nil, 9},
		{"kvnode_raft_last_log_index", nil, 11},
		{"kvnode_raft_leader_changes_total", nil, 2},
		{"kvnode_raft_state", map[string]string{"state": "follower"}, 1},
		{"kvnode_raft_state", map[string]string{"state": "leader"}, 0},
		{"kvnode_raft_has_leader", nil, 1},
		{"kvnode_storage_keys", map[string]string{"storage": "mem", "driver": "memory"}, 5},
		{"kvnode_storage_bytes", map[string]string{"storage": "mem", "driver": "memory"}, 50},
		{"kvnode_gossip_members", map[string]string{"state": "alive"}, 2},
		{"kvnode_gossip_members", map[string]string{"state": "suspect"}, 0},
		{"kvnode_gossip_members", map[string]string{"state": "dead"}, 1},
		{"kvnode_ready", nil, 1},
	}
	for _, c := range checks {
		if got := value(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	term.Store(4)
	if got := value(scrape(t, base), "kvnode_raft_term", nil); got != 4 {
		t.Fatalf("term after change %v, want 4: the state is read at scrape time", got)
	}
}

func TestServer_HealthAndReady(t *testing.T) {
	var ready atomic.Bool
	s, base := startOps(t, nil, func() (bool, string) {
		if ready.Load() {
			return true, ""
		}
		return false, "no leader known"
	})
	if code, body := get(t, base+"/health"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/health: %d %q", code, body)
	}
	if code, body := get(t, base+"/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no leader known") {
		t.Fatalf("/ready before: %d %q", code, body)
	}
	ready.Store(true)
	if code, _ := get(t, base+"/ready"); code != http.StatusOK {
		t.Fatalf("/ready after: %d", code)
	}
	if code, _ := get(t, base+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics without metrics: %d", code)
	}
	if code, _ := get(t, base+"/nope"); code != http.StatusNotFound {
		t.Fatalf("/nope: %d", code)
	}
	resp, err := http.Post(base+"/health", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /health: %d", resp.StatusCode)
	}
	if len(s.Addrs()) != 1 {
		t.Fatalf("%d addresses", len(s.Addrs()))
	}
}

func TestServer_Addresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	if _, err := NewServer([]string{ln.Addr().String()}, nil, nil, false, nil); err == nil {
		t.Fatal("a busy port was accepted")
	}
	if _, err := NewServer([]string{"no-port"}, nil, nil, false, nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("bad address: %v", err)
	}
	// metrics.address and status.address on two ports: both serve.
	s, _ := startOps(t, nil, nil, "127.0.0.1:0", "http://127.0.0.1:0")
	if len(s.Addrs()) != 2 {
		t.Fatalf("%d addresses, want 2", len(s.Addrs()))
	}
	for _, a := range s.Addrs() {
		if code, _ := get(t, "http://"+a.String()+"/health"); code != http.StatusOK {
			t.Fatalf("%s/health: %d", a, code)
		}
	}
}

// The profiler is served only when asked for.
func TestServer_PprofOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		s, err := NewServer([]string{"127.0.0.1:0"}, nil, nil, on, nil)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = s.Serve() }()
		resp, err := http.Get("http://" + s.Addrs()[0].String() + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if (resp.StatusCode == http.StatusOK) != on {
			t.Errorf("pprof %v: /debug/pprof/cmdline answered %d", on, resp.StatusCode)
		}
		_ = s.Shutdown(context.Background())
	}
}
