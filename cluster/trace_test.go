package cluster_test

import (
	"context"
	"fmt"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
)

// A write taken by a follower is one trace across both nodes: store →
// cluster.write → cluster.forward on the follower, then cluster.propose
// (the forward span's remote child) → raft.apply on the leader.
func TestTracing_AWriteIsOneTraceAcrossNodes(t *testing.T) {
	recs := make([]*tracetest.SpanRecorder, 3)
	c := clustertest.New(t, clustertest.Options{
		Storages: map[string]string{"mem": "memory"},
		Tracing: func(i int) trace.TracerProvider {
			recs[i] = tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recs[i]))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			return tp
		},
	})
	leader := c.WaitLeader()
	follower := (leader + 1) % 3
	s := c.Store(follower, "mem", cluster.ReadLinearizable)
	_, root := sdktrace.NewTracerProvider().Tracer("test").Start(context.Background(), "client")
	c.Retry("write through a follower", func(ctx context.Context) error {
		return s.Set(trace.ContextWithSpan(ctx, root), []drivers.Item{{Key: "k", Value: []byte("v")}})
	})
	root.End()
	want := root.SpanContext().TraceID()

	var fwd, prop sdktrace.ReadOnlySpan
	c.Poll("spans recorded", func() string {
		// The chain on the follower, each span the child of the one before.
		parent := root.SpanContext().SpanID()
		for _, name := range []string{"mem:set", "cluster.write", "cluster.forward"} {
			sp := childNamed(recs[follower], name, want, parent)
			if sp == nil {
				return fmt.Sprintf("follower has no %s under span %s of trace %s", name, parent, want)
			}
			parent, fwd = sp.SpanContext().SpanID(), sp
		}
		prop = childNamed(recs[leader], "cluster.propose", want, fwd.SpanContext().SpanID())
		if prop == nil {
			return "leader has no cluster.propose under the follower's cluster.forward"
		}
		if childNamed(recs[leader], "raft.apply", want, prop.SpanContext().SpanID()) == nil {
			return "leader has no raft.apply under cluster.propose"
		}
		return ""
	})
	if !prop.Parent().IsRemote() {
		t.Error("cluster.propose's parent is not marked remote")
	}
}

// childNamed returns the ended span called name in trace whose parent is
// parent, or nil.
func childNamed(rec *tracetest.SpanRecorder, name string, tr trace.TraceID, parent trace.SpanID) sdktrace.ReadOnlySpan {
	for _, sp := range rec.Ended() {
		if sp.Name() == name && sp.SpanContext().TraceID() == tr && sp.Parent().SpanID() == parent {
			return sp
		}
	}
	return nil
}
