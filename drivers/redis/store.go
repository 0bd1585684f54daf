package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kvnode/kvnode/drivers"
)

var _ drivers.Store = (*Store)(nil)

// Client modes, as go-redis' NewUniversalClient picks them.
const (
	ModeSingle   = "single"
	ModeSentinel = "sentinel"
	ModeCluster  = "cluster"
)

// Store is a drivers.Store backed by redis. It is safe for concurrent use.
type Store struct {
	client goredis.UniversalClient
	// cluster is set when keys may live on different nodes, so multi-key
	// commands (MGET, DEL k1 k2) must become per-key pipelines.
	cluster bool
	mode    string
	tracer  trace.Tracer
	logger  *slog.Logger
	closed  atomic.Bool
}

// New validates cfg (after InitDefaults) and returns a Store. It does not
// connect: the first call does, as in RoadRunner, so a storage whose server
// is not up yet still starts. A nil tp disables tracing; a nil logger
// discards logs.
func New(cfg Config, tp trace.TracerProvider, logger *slog.Logger) (*Store, error) {
	cfg.InitDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client := goredis.NewUniversalClient(opts)
	_, cluster := client.(*goredis.ClusterClient)
	s := &Store{
		client:  client,
		cluster: cluster,
		mode:    modeOf(opts),
		tracer:  tp.Tracer("kvnode/redis"),
		logger:  logger.With("component", "redis"),
	}
	s.logger.Debug("redis storage configured", "mode", s.mode, "addrs", opts.Addrs, "db", opts.DB)
	return s, nil
}

// modeOf mirrors NewUniversalClient's choice, for logs and tests.
func modeOf(o *goredis.UniversalOptions) string {
	switch {
	case o.MasterName != "" && (o.RouteByLatency || o.RouteRandomly || o.IsClusterMode):
		return ModeCluster // sentinel-discovered, routed like a cluster
	case o.MasterName != "":
		return ModeSentinel
	case len(o.Addrs) > 1 || o.IsClusterMode:
		return ModeCluster
	default:
		return ModeSingle
	}
}

// Mode reports which kind of client the configuration selected:
// ModeSingle, ModeSentinel or ModeCluster.
func (s *Store) Mode() string { return s.mode }

// Close closes the client and its connections. Calls after Close, Close
// included, return drivers.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return drivers.ErrClosed
	}
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("redis close: %w", err)
	}
	return nil
}

// call runs fn in a span named "redis:<method>" and returns as soon as fn
// does or ctx ends. go-redis honours only deadlines, not plain
// cancellation, so fn runs in its own goroutine when ctx can be cancelled;
// fn must then write its results only to variables the caller reads after a
// nil error.
func (s *Store) call(ctx context.Context, method string, n int, fn func(ctx context.Context) error) error {
	if s.closed.Load() {
		return fmt.Errorf("redis %s: %w", method, drivers.ErrClosed)
	}
	ctx, span := s.tracer.Start(ctx, "redis:"+method,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", "redis"), attribute.Int("kv.keys", n)))
	defer span.End()
	err := await(ctx, fn)
	if err != nil {
		if errors.Is(err, goredis.ErrClosed) {
			err = drivers.ErrClosed // closed while the call was on its way
		}
		err = fmt.Errorf("redis %s: %w", method, err)
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

func await(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ctx.Done() == nil {
		return fn(ctx)
	}
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unique drops repeated keys: a request naming a key twice gets one answer.
func unique(keys []string) []string {
	if len(keys) < 2 {
		return keys
	}
	seen := make(map[string]struct{}, len(keys))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			out = append(out, k)
		}
	}
	return out
}
