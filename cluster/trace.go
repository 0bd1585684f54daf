package cluster

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	eventlog "github.com/kvnode/kvnode/log"
)

// A write's spans, in the trace of the kv call that made it (rpc opens
// "kv:set", the store "<storage>:set"):
//
//	cluster.write    on the node that took the call, until committed
//	cluster.forward  a follower's Propose call to the leader (client)
//	cluster.propose  the leader serving it (server), the forward span's
//	                 child through ProposeArgs.Trace
//	raft.apply       the leader's proposal, until its FSM applied it
//
// forward and apply carry a batch of writes from several callers: a batch
// span is the child of its first write's span and links to the others,
// and every write's span links back to it, so each caller's trace reaches
// the batch its write travelled in. Without Options.Tracing none of this
// runs.

// startSpan opens a span under ctx's; without a tracer it returns ctx and a
// nil span, which endSpan accepts.
func (n *Node) startSpan(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if n.tracer == nil {
		return ctx, nil
	}
	return n.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// startBatchSpan opens the span of a batch of writes whose callers' spans
// are in writes: under ctx (which carries the batch's deadline, not a
// caller's), the child of the first write's span, linked both ways with
// every write's.
func (n *Node) startBatchSpan(ctx context.Context, name string, kind trace.SpanKind, writes []context.Context) (context.Context, trace.Span) {
	if n.tracer == nil || len(writes) == 0 {
		return ctx, nil
	}
	links := make([]trace.Link, 0, len(writes)-1)
	for _, w := range writes[1:] {
		if sc := trace.SpanContextFromContext(w); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	ctx = trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(writes[0]))
	ctx, sp := n.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("kv.writes", len(writes))))
	back := trace.Link{SpanContext: sp.SpanContext()}
	for _, w := range writes[1:] {
		trace.SpanFromContext(w).AddLink(back)
	}
	return ctx, sp
}

// writeAttrs describe one write on its span.
func writeAttrs(ev eventlog.Event) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("kv.storage", ev.Storage),
		attribute.String("kv.op", ev.Op.Kind.String()),
	}
}

// injectTrace returns ctx's span context for the peer protocol; nil when
// there is none.
func injectTrace(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	// W3C traceparent, as every OpenTelemetry SDK reads it.
	m := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, m)
	return m
}

// extractTrace returns ctx carrying the remote span context in m, if any.
func extractTrace(ctx context.Context, m map[string]string) context.Context {
	if len(m) == 0 {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier(m))
}

// endSpan ends sp (nil: no tracer), recording err.
func endSpan(sp trace.Span, err error) {
	if sp == nil {
		return
	}
	if err != nil {
		sp.RecordError(err)
		sp.SetStatus(codes.Error, err.Error())
	}
	sp.End()
}
