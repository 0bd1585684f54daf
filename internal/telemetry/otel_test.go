package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kvnode/kvnode/config"
)

func TestNewTracing_NoExporterIsNoop(t *testing.T) {
	t.Parallel()
	for _, exporter := range []string{"", "none"} {
		tr, err := NewTracing(t.Context(), config.OTelConfig{Exporter: exporter}, "v", io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := tr.Provider.(noop.TracerProvider); !ok || tr.Enabled {
			t.Errorf("exporter %q: provider %T enabled %v, want the no-op provider", exporter, tr.Provider, tr.Enabled)
		}
		if err := tr.Shutdown(t.Context()); err != nil {
			t.Error(err)
		}
	}
}

// collector is a loopback OTLP/HTTP endpoint recording what it receives.
type collector struct {
	mu   sync.Mutex
	reqs []*http.Request
	body [][]byte
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.reqs = append(c.reqs, r)
	c.body = append(c.body, b)
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func TestNewTracing_OTLPHTTPExportsToTheCollector(t *testing.T) {
	t.Parallel()
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	cfg := config.OTelConfig{
		Exporter:  "otlp",
		Client:    "http",
		Endpoint:  strings.TrimPrefix(srv.URL, "http://"),
		CustomURL: "/custom/traces",
		Insecure:  true,
		Compress:  true,
		Headers:   map[string]string{"x-token": "abc"},
		Resource:  map[string]string{"service_name": "kv-test"},
	}
	tr, err := NewTracing(t.Context(), cfg, "v1.2.3", io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Provider.Tracer("test").Start(context.Background(), "kv:set")
	span.End()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.reqs) == 0 {
		t.Fatal("the collector received nothing")
	}
	r := col.reqs[0]
	if r.Method != http.MethodPost || r.URL.Path != "/custom/traces" || r.Header.Get("x-token") != "abc" || r.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("request %s %s headers %v", r.Method, r.URL.Path, r.Header)
	}
	if len(col.body[0]) == 0 {
		t.Error("empty export body")
	}
}

func TestNewTracing_GRPCShutdownIsBoundedWithoutCollector(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: creating the exporter must not block, and
	// flushing a span must give up when its context ends.
	tr, err := NewTracing(t.Context(), config.OTelConfig{Exporter: "otlp", Client: "grpc", Endpoint: "127.0.0.1:1", Insecure: true, Compress: true}, "v", io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Provider.Tracer("test").Start(context.Background(), "kv:get")
	span.End()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tr.Shutdown(ctx) }()
	select {
	case err := <-done:
		_ = err // an error (deadline, connection refused) is expected and fine
	case <-time.After(15 * time.Second):
		t.Fatal("shutdown ignored its context")
	}
}

func TestResourceAttributes(t *testing.T) {
	t.Parallel()
	attrs := resourceAttributes(config.OTelConfig{
		ServiceName:      "old-name",
		ServiceNamespace: "ns",
		Resource:         map[string]string{"service_name": "new-name", "deployment.environment": "test"},
	}, "v9")
	var got []string
	for _, a := range attrs {
		got = append(got, string(a.Key)+"="+a.Value.AsString())
	}
	want := "deployment.environment=test,service.name=new-name,service.namespace=ns,service.version=v9"
	if strings.Join(got, ",") != want {
		t.Errorf("attributes = %s, want %s", strings.Join(got, ","), want)
	}
}
