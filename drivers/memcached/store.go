package memcached

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/bradfitz/gomemcache/memcache"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kvnode/kvnode/drivers"
)

var _ drivers.Store = (*Store)(nil)

// Store is a drivers.Store backed by memcached. It is safe for concurrent
// use.
type Store struct {
	client *memcache.Client
	tracer trace.Tracer
	logger *slog.Logger
	closed atomic.Bool
}

// New validates cfg (after InitDefaults) and returns a Store. It neither
// connects nor resolves host names: the first call does, as in RoadRunner,
// so a storage whose server is not up yet still starts. A nil tp disables
// tracing; a nil logger discards logs.
func New(cfg Config, tp trace.TracerProvider, logger *slog.Logger) (*Store, error) {
	cfg.InitDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client := memcache.NewFromSelector(&lazyServers{addrs: append([]string(nil), cfg.Addr...)})
	client.Timeout = cfg.Timeout
	client.MaxIdleConns = cfg.MaxIdleConns
	s := &Store{client: client, tracer: tp.Tracer("kvnode/memcached"), logger: logger.With("component", "memcached")}
	s.logger.Debug("memcached storage configured", "addr", []string(cfg.Addr))
	return s, nil
}

// lazyServers resolves the configured addresses on first use rather than
// in New, and retries on every call until that succeeds, so that a server
// whose name does not resolve yet (a container still starting) does not
// stop kvnode from starting.
type lazyServers struct {
	addrs []string
	mu    sync.Mutex
	ready atomic.Bool
	list  memcache.ServerList
}

func (l *lazyServers) resolve() error {
	if l.ready.Load() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ready.Load() {
		return nil
	}
	if err := l.list.SetServers(l.addrs...); err != nil {
		return fmt.Errorf("resolve %v: %w", l.addrs, err)
	}
	l.ready.Store(true)
	return nil
}

func (l *lazyServers) PickServer(key string) (net.Addr, error) {
	if err := l.resolve(); err != nil {
		return nil, err
	}
	return l.list.PickServer(key)
}

func (l *lazyServers) Each(f func(net.Addr) error) error {
	if err := l.resolve(); err != nil {
		return err
	}
	return l.list.Each(f)
}

// Close closes idle connections. Calls after Close, Close included, return
// drivers.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return drivers.ErrClosed
	}
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("memcached close: %w", err)
	}
	return nil
}

// call runs fn in a span named "memcached:<method>" after checking that the
// store is open and ctx is live.
func (s *Store) call(ctx context.Context, method string, n int, fn func(ctx context.Context) error) error {
	if s.closed.Load() {
		return fmt.Errorf("memcached %s: %w", method, drivers.ErrClosed)
	}
	ctx, span := s.tracer.Start(ctx, "memcached:"+method,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", "memcached"), attribute.Int("kv.keys", n)))
	defer span.End()
	err := ctx.Err()
	if err == nil {
		err = fn(ctx)
	}
	if err != nil {
		err = fmt.Errorf("memcached %s: %w", method, err)
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// legalKey is memcached's rule: at most 250 bytes, no spaces or control
// characters.
func legalKey(key string) bool {
	if len(key) == 0 || len(key) > 250 {
		return false
	}
	for i := range len(key) {
		if key[i] <= ' ' || key[i] == 0x7f {
			return false
		}
	}
	return true
}

func checkKeys(keys []string) error {
	for _, k := range keys {
		if !legalKey(k) {
			if len(k) > 40 {
				k = k[:40] + "..."
			}
			return fmt.Errorf("%w: %q", ErrMalformedKey, k)
		}
	}
	return nil
}

func itemKeys(items []drivers.Item) []string {
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	return keys
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

// maxRelative is memcached's REALTIME_MAXDELTA: an expiration up to 30 days
// is seconds from now, a larger one an absolute Unix time.
const maxRelative = 30 * 24 * 60 * 60

// expiration converts a deadline (Unix nanoseconds, 0 = none) into
// memcached's expiration field at now. Seconds are rounded up so an item is
// never dropped before its deadline by our rounding; expired reports a
// deadline that already passed, which the caller turns into a delete.
func expiration(deadline, now int64) (exp int32, expired bool) {
	const sec = int64(1e9)
	switch {
	case deadline == 0:
		return 0, false
	case drivers.Expired(deadline, now):
		return 0, true
	}
	if rel := (deadline - now + sec - 1) / sec; rel <= maxRelative {
		return int32(rel), false
	}
	abs := deadline / sec // rounded up below; deadline+sec-1 could overflow
	if deadline%sec != 0 {
		abs++
	}
	if abs > math.MaxInt32 {
		abs = math.MaxInt32
	}
	return int32(abs), false
}

// classify maps gomemcache's errors onto this package's sentinels where
// they mean something to a caller.
func classify(key string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, memcache.ErrMalformedKey):
		return fmt.Errorf("%w: %q", ErrMalformedKey, key)
	case strings.Contains(err.Error(), "too large"):
		// memcached answers "SERVER_ERROR object too large for cache",
		// which gomemcache reports only as an unexpected response line.
		return fmt.Errorf("%w: key %q: %w", ErrValueTooLarge, key, err)
	default:
		return err
	}
}
