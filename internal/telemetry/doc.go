// Package telemetry turns RoadRunner's logs and otel sections into what a
// kvnode node reports through: an slog.Logger (NewLogger: text or JSON
// lines on stderr, stdout or files, at RoadRunner's levels) and a tracer
// provider (NewTracing: a batch span processor in front of an OTLP
// exporter over HTTP or gRPC, or stdout/stderr; a no-op provider when off,
// so tracing then costs nothing). Both are passed to the node's parts
// explicitly: the global slog and otel defaults are never set.
package telemetry
