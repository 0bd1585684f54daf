package telemetry

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	_ "google.golang.org/grpc/encoding/gzip" // registers "gzip" for otel.compress over grpc

	"github.com/kvnode/kvnode/config"
)

const defaultServiceName = "kvnode"

// Tracing is the tracer provider kvnode passes to its parts explicitly; the
// global otel provider is never set.
type Tracing struct {
	// Provider is a no-op provider when tracing is off.
	Provider trace.TracerProvider
	// Enabled is false for the no-op provider, so callers can skip
	// creating tracers (and spans) altogether.
	Enabled bool
	// Shutdown flushes buffered spans; it must be bounded by its context.
	Shutdown func(context.Context) error
}

// NewTracing builds the tracer provider for cfg: a batch span processor in
// front of the configured exporter, or a no-op provider when there is no
// exporter, so that tracing then costs nothing. stdout is where the stdout
// exporter writes (injected for tests).
func NewTracing(ctx context.Context, cfg config.OTelConfig, version string, stdout, stderr io.Writer) (*Tracing, error) {
	if !cfg.Enabled() {
		return &Tracing{Provider: noop.NewTracerProvider(), Shutdown: func(context.Context) error { return nil }}, nil
	}
	exp, err := newExporter(ctx, cfg, stdout, stderr)
	if err != nil {
		return nil, fmt.Errorf("otel: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(resourceAttributes(cfg, version)...))
	if err != nil {
		// Only schema URL conflicts fail a merge; the attributes alone will do.
		res = resource.NewSchemaless(resourceAttributes(cfg, version)...)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracing{Provider: tp, Enabled: true, Shutdown: tp.Shutdown}, nil
}

func newExporter(ctx context.Context, cfg config.OTelConfig, stdout, stderr io.Writer) (sdktrace.SpanExporter, error) {
	switch cfg.Exporter {
	case "stdout":
		return stdouttrace.New(stdouttrace.WithWriter(stdout)) //nolint:wrapcheck // wrapped by NewTracing
	case "stderr":
		return stdouttrace.New(stdouttrace.WithWriter(stderr)) //nolint:wrapcheck // wrapped by NewTracing
	case "otlp":
	default:
		return nil, fmt.Errorf("unsupported exporter %q", cfg.Exporter)
	}
	if cfg.Client == "grpc" {
		var opts []otlptracegrpc.Option
		if cfg.CustomURL != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(cfg.CustomURL))
		} else if cfg.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpoint(cfg.Endpoint))
		}
		if cfg.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		if cfg.Compress {
			opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
		}
		if len(cfg.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(cfg.Headers))
		}
		return otlptracegrpc.New(ctx, opts...) //nolint:wrapcheck // wrapped by NewTracing
	}
	var opts []otlptracehttp.Option
	switch {
	case strings.Contains(cfg.CustomURL, "://"):
		opts = append(opts, otlptracehttp.WithEndpointURL(cfg.CustomURL))
	case cfg.CustomURL != "":
		if cfg.Endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpoint(cfg.Endpoint))
		}
		opts = append(opts, otlptracehttp.WithURLPath(cfg.CustomURL))
	case cfg.Endpoint != "":
		opts = append(opts, otlptracehttp.WithEndpoint(cfg.Endpoint))
	}
	if cfg.Insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	if cfg.Compress {
		opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	return otlptracehttp.New(ctx, opts...) //nolint:wrapcheck // wrapped by NewTracing
}

// resourceAttributes describes this process to the collector.
func resourceAttributes(cfg config.OTelConfig, version string) []attribute.KeyValue {
	svc := map[string]string{
		"service.name":        cfg.ServiceName,
		"service.version":     cfg.ServiceVersion,
		"service.namespace":   cfg.ServiceNamespace,
		"service.instance.id": cfg.ServiceInstanceID,
	}
	if svc["service.name"] == "" {
		svc["service.name"] = defaultServiceName
	}
	if svc["service.version"] == "" {
		svc["service.version"] = version
	}
	rrNames := map[string]string{
		"service_name": "service.name", "service_version": "service.version",
		"service_namespace": "service.namespace", "service_instance_id": "service.instance.id",
	}
	for k, v := range cfg.Resource {
		if name, ok := rrNames[k]; ok {
			k = name
		}
		svc[k] = v
	}
	out := make([]attribute.KeyValue, 0, len(svc))
	for _, k := range slices.Sorted(maps.Keys(svc)) {
		if svc[k] != "" {
			out = append(out, attribute.String(k, svc[k]))
		}
	}
	return out
}
