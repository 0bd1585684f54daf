package rrplugin_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/roadrunner-server/api/v4/plugins/v1/kv"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap"

	"github.com/kvnode/kvnode/rpc/rpctest"
	"github.com/kvnode/kvnode/rrplugin"
)

// These tests run the plugin in-process against kvnode's real RPC server
// (rpctest: a memory storage named "default"). Only RoadRunner's config
// and logger plugins are stood in for, by the small types below; the RR
// binary tests (rr_test.go) use the real ones.

// config is .rr.yaml already decoded: section name to value.
type config map[string]any

func (c config) Has(name string) bool { _, ok := c[name]; return ok }

func (c config) UnmarshalKey(name string, out any) error {
	v, ok := c[name]
	if !ok {
		return nil
	}
	switch out := out.(type) {
	case *rrplugin.Config:
		*out = v.(rrplugin.Config)
	case *rrplugin.StorageConfig:
		*out = v.(rrplugin.StorageConfig)
	case *map[string]any:
		*out = v.(map[string]any)
	default:
		return errors.New("unexpected type")
	}
	return nil
}

type nopLogger struct{}

func (nopLogger) NamedLogger(string) *zap.Logger { return zap.NewNop() }

type tracer struct{ tp *sdktrace.TracerProvider }

func (t tracer) Tracer() *sdktrace.TracerProvider { return t.tp }

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "tcp://" + ln.Addr().String()
	_ = ln.Close()
	return addr
}

// newPlugin initialises a plugin with cfg and collects a span recorder as
// the otel plugin's tracer provider.
func newPlugin(t *testing.T, cfg config) (*rrplugin.Plugin, *tracetest.SpanRecorder) {
	t.Helper()
	p := &rrplugin.Plugin{}
	if err := p.Init(cfg, nopLogger{}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	for _, in := range p.Collects() {
		in.Callback(tracer{tp})
	}
	return p, rec
}

func storage(t *testing.T, p *rrplugin.Plugin, key string) kv.Storage {
	t.Helper()
	s, err := p.KvFromConfig(key)
	if err != nil {
		t.Fatalf("KvFromConfig(%q): %v", key, err)
	}
	t.Cleanup(s.Stop)
	return s
}

type item struct{ k, v, t string }

func (i item) Key() string     { return i.k }
func (i item) Value() []byte   { return []byte(i.v) }
func (i item) Timeout() string { return i.t }

func gather(t *testing.T, p *rrplugin.Plugin, name string, labels map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p.MetricsCollector()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func TestFailoverFromUnreachableNode(t *testing.T) {
	dead, live := closedAddr(t), rpctest.ServeMemory(t, "tcp://127.0.0.1:0")
	p, rec := newPlugin(t, config{
		"kv":                  map[string]any{"default": map[string]any{"driver": "kvnode"}},
		"kvnode":              rrplugin.Config{Addrs: []string{dead, live}},
		"kv.default.config":   rrplugin.StorageConfig{},
		"kv.elsewhere.config": rrplugin.StorageConfig{Storage: "default"},
		"kv.nowhere.config":   rrplugin.StorageConfig{Storage: "nowhere"},
	})
	s := storage(t, p, "kv.default.config")
	if err := s.Set(item{k: "k", v: "v"}); err != nil {
		t.Fatalf("Set with the first node down: %v", err)
	}
	if got := gather(t, p, "rr_kvnode_failovers_total", map[string]string{"storage": "default"}); got != 1 {
		t.Errorf("failovers = %v, want 1", got)
	}
	if got := gather(t, p, "rr_kvnode_active_node", map[string]string{"addr": live}); got != 1 {
		t.Errorf("active_node{%s} = %v, want 1", live, got)
	}
	// Later calls go straight to the node that answered.
	vals, err := storage(t, p, "kv.elsewhere.config").MGet("k")
	if err != nil || string(vals["k"]) != "v" {
		t.Fatalf("MGet through a storage named differently in RR: %q, %v", vals, err)
	}
	if got := gather(t, p, "rr_kvnode_failovers_total", map[string]string{"storage": "default"}); got != 1 {
		t.Errorf("failovers = %v after a call to the node that answered, want still 1", got)
	}

	spans := rec.Ended()
	if len(spans) != 2 || spans[0].Name() != "kvnode:set" || spans[1].Name() != "kvnode:mget" {
		t.Fatalf("spans = %v, want kvnode:set, kvnode:mget", spans)
	}
	var node string
	for _, a := range spans[0].Attributes() {
		if a.Key == "kvnode.node" {
			node = a.Value.AsString()
		}
	}
	if node != live {
		t.Errorf("span kvnode.node = %q, want %q", node, live)
	}

	_, err = storage(t, p, "kv.nowhere.config").Has("k")
	if err == nil || !strings.Contains(err.Error(), "no such storage: nowhere") {
		t.Errorf("a storage the node does not have: %v", err)
	}
	if last := rec.Ended()[2]; last.Status().Description != "no_such_storage" || len(last.Events()) == 0 {
		t.Errorf("failed call's span: status %+v, events %v", last.Status(), last.Events())
	}
}

func TestNothingToSendAsksNoNode(t *testing.T) {
	p, _ := newPlugin(t, config{
		"kv":                map[string]any{"default": map[string]any{"driver": "kvnode"}},
		"kvnode":            rrplugin.Config{Addrs: []string{closedAddr(t)}, Timeout: time.Second},
		"kv.default.config": rrplugin.StorageConfig{},
	})
	s := storage(t, p, "kv.default.config")
	if err := s.Set(); err != nil {
		t.Errorf("Set of nothing: %v", err)
	}
	if vals, err := s.MGet(); err != nil || len(vals) != 0 {
		t.Errorf("MGet of nothing: %v, %v", vals, err)
	}
	if err := s.Delete(); err != nil {
		t.Errorf("Delete of nothing: %v", err)
	}
	// Something to send, and no node: a refused dial, reported as such.
	err := s.Set(item{k: "k", v: "v"})
	if err == nil || !strings.Contains(err.Error(), "client: dial") {
		t.Errorf("Set with every node down: %v", err)
	}
	if got := gather(t, p, "rr_kvnode_errors_total", map[string]string{"method": "set", "kind": "unreachable"}); got != 1 {
		t.Errorf("errors{kind=unreachable} = %v, want 1", got)
	}
}

func TestStorageNames(t *testing.T) {
	addr := rpctest.ServeMemory(t, "tcp://127.0.0.1:0")
	base := func() config {
		return config{
			"kvnode": rrplugin.Config{Addrs: []string{addr}},
			"kv": map[string]any{
				"default": map[string]any{"driver": "kvnode"},
				"global":  map[string]any{"driver": "kvnode"},
				"mem":     map[string]any{"driver": "memory"},
			},
			"global": rrplugin.StorageConfig{},
		}
	}
	// "" is the one kvnode storage with no config at all: default.
	p, _ := newPlugin(t, base())
	if err := storage(t, p, "").Set(item{k: "k", v: "v"}); err != nil {
		t.Errorf("storage without config, named like the node's: %v", err)
	}
	// A top-level section named like the storage: "global" on the node.
	if _, err := storage(t, p, "global").Has("k"); err == nil || !strings.Contains(err.Error(), "no such storage: global") {
		t.Errorf("storage configured by a top-level section: %v, want the node to be asked for \"global\"", err)
	}
	// Two kvnode storages without config: which one "" means is a guess.
	cfg := base()
	cfg["kv"].(map[string]any)["other"] = map[string]any{"driver": "kvnode"}
	p, _ = newPlugin(t, cfg)
	if _, err := p.KvFromConfig(""); err == nil || !strings.Contains(err.Error(), "kv storages default, other use driver kvnode without a config") {
		t.Errorf("ambiguous storage: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	p := &rrplugin.Plugin{}
	err := p.Init(config{"kv": map[string]any{}, "kvnode": rrplugin.Config{Addrs: []string{"http://x", "tcp://a:1", "tcp://a:1"}, PoolSize: -1}}, nopLogger{})
	for _, want := range []string{"kvnode.addrs[0]", "kvnode.addrs[2]: \"tcp://a:1\" is listed twice", "kvnode.pool_size"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Init: %v, want it to name %s", err, want)
		}
	}
	// Built in but unused: no kv section, no error.
	if err := (&rrplugin.Plugin{}).Init(config{}, nopLogger{}); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("Init without kv: %v, want the plugin disabled", err)
	}
	// A kvnode storage without a kvnode section.
	p = &rrplugin.Plugin{}
	if err := p.Init(config{"kv": map[string]any{}}, nopLogger{}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.KvFromConfig("kv.x.config"); err == nil || !strings.Contains(err.Error(), "no top-level kvnode section") {
		t.Errorf("KvFromConfig without a kvnode section: %v", err)
	}
}
