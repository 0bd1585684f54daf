package rrplugin

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/roadrunner-server/api/v4/plugins/v1/kv"
	"github.com/roadrunner-server/errors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kvnode/kvnode/client"
)

// Storage is one RoadRunner kv storage served by a kvnode cluster. It
// implements RoadRunner's kv.Storage; RoadRunner's kv plugin calls it from
// its RPC service, which PHP reaches through RR_RPC.
//
// Error texts follow RoadRunner's drivers: an operation name
// (kvnode_driver_mget, in the style of redis_driver_mget) and RoadRunner's
// own kinds ("key can't be empty string"), so that what the PHP client
// matches on keeps working. Blank keys, bad timeouts and incomplete
// MExpire items are refused here, before any node is asked, with the texts
// RoadRunner's drivers give.
type Storage struct {
	name    string
	nodes   *nodes
	timeout time.Duration
	tracer  trace.Tracer
	release func()
	m       map[string]methodMetrics
	moves   prometheus.Counter
}

var _ kv.Storage = (*Storage)(nil)

// Methods, as they appear in spans (kvnode:<method>) and metric labels.
const (
	mHas     = "has"
	mGet     = "get"
	mMGet    = "mget"
	mSet     = "set"
	mMExpire = "mexpire"
	mTTL     = "ttl"
	mDelete  = "delete"
	mClear   = "clear"
)

var allMethods = []string{mHas, mGet, mMGet, mSet, mMExpire, mTTL, mDelete, mClear}

// opName is the operation RoadRunner's error texts name, per method.
func opName(method string) errors.Op { return errors.Op("kvnode_driver_" + method) }

// call is one storage call in progress: its span, its metrics, its deadline.
type call struct {
	s      *Storage
	method string
	ctx    context.Context
	cancel context.CancelFunc
	span   trace.Span
	start  time.Time
}

func (s *Storage) begin(method string) *call {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	// The kv plugin starts its own kv:<method> span without handing its
	// context on, so this span is a root, like every RoadRunner driver's.
	ctx, span := s.tracer.Start(ctx, "kvnode:"+method)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("kvnode.storage", s.name))
	}
	return &call{s: s, method: method, ctx: ctx, cancel: cancel, span: span, start: time.Now()}
}

// refuse ends a call refused before any node was asked.
func (c *call) refuse(err error) error {
	c.finish(kindBadRequest, err)
	return err
}

// run sends the call to the cluster, moving between nodes only while the
// failure proves nothing was done.
func (c *call) run(fn func(context.Context, *client.Client) error) error {
	addr, moves, err := c.s.nodes.do(c.ctx, fn)
	if moves > 0 {
		c.s.moves.Add(float64(moves))
	}
	if c.span.IsRecording() {
		c.span.SetAttributes(attribute.String("kvnode.node", addr), attribute.Int("kvnode.failovers", moves))
	}
	if err != nil {
		kind := errorKind(err)
		err = errors.E(opName(c.method), err)
		c.finish(kind, err)
		return err
	}
	return c.ok()
}

// ok ends a call that succeeded; on its own, it ends a call with nothing to
// send (an empty item list), which succeeds without asking a node, as on
// RoadRunner's memory driver.
func (c *call) ok() error {
	c.finish("", nil)
	return nil
}

func (c *call) finish(kind string, err error) {
	m := c.s.m[c.method]
	m.calls.Inc()
	m.duration.Observe(time.Since(c.start).Seconds())
	if err != nil {
		m.errors(kind).Inc()
		c.span.RecordError(err)
		c.span.SetStatus(codes.Error, kind)
	}
	c.span.End()
	c.cancel()
}

func blank(key string) bool { return strings.TrimSpace(key) == "" }

// checkKeys refuses a call with a blank key, as RoadRunner's drivers do.
func checkKeys(method string, keys []string) error {
	if slices.ContainsFunc(keys, blank) {
		return errors.E(opName(method), errors.EmptyKey)
	}
	return nil
}

// Has reports which of keys exist.
func (s *Storage) Has(keys ...string) (map[string]bool, error) {
	c := s.begin(mHas)
	if err := checkKeys(mHas, keys); err != nil {
		return nil, c.refuse(err)
	}
	out := make(map[string]bool, len(keys))
	if len(keys) == 0 {
		return out, c.ok()
	}
	err := c.run(func(ctx context.Context, cl *client.Client) error {
		found, err := cl.Has(ctx, s.name, keys...)
		for _, k := range found {
			out[k] = true
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Get returns the value of key, or nil when it does not exist. (The kv
// plugin's RPC service does not call it: PHP reads with MGet.)
func (s *Storage) Get(key string) ([]byte, error) {
	c := s.begin(mGet)
	if blank(key) {
		return nil, c.refuse(errors.E(opName(mGet), errors.EmptyKey))
	}
	var v []byte
	err := c.run(func(ctx context.Context, cl *client.Client) error {
		vals, err := cl.MGet(ctx, s.name, key)
		v = vals[key]
		return err
	})
	return v, err
}

// MGet returns the values of the keys that exist; missing and expired keys
// are left out, as PHP expects.
func (s *Storage) MGet(keys ...string) (map[string][]byte, error) {
	c := s.begin(mMGet)
	if err := checkKeys(mMGet, keys); err != nil {
		return nil, c.refuse(err)
	}
	if len(keys) == 0 {
		return map[string][]byte{}, c.ok()
	}
	var out map[string][]byte
	err := c.run(func(ctx context.Context, cl *client.Client) error {
		var err error
		out, err = cl.MGet(ctx, s.name, keys...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Set writes items, all or none: the cluster applies one Set as one log
// entry.
func (s *Storage) Set(items ...kv.Item) error {
	c := s.begin(mSet)
	batch := make([]client.Item, 0, len(items))
	for _, it := range items {
		if it == nil {
			return c.refuse(errors.E(opName(mSet), errors.EmptyItem))
		}
		if blank(it.Key()) {
			return c.refuse(errors.E(opName(mSet), errors.EmptyKey))
		}
		if t := it.Timeout(); t != "" {
			if _, err := time.Parse(time.RFC3339, t); err != nil {
				// RoadRunner's drivers return time.Parse's error as it is.
				return c.refuse(err)
			}
		}
		batch = append(batch, client.Item{Key: it.Key(), Value: it.Value(), Timeout: it.Timeout()})
	}
	if len(batch) == 0 {
		return c.ok()
	}
	return c.run(func(ctx context.Context, cl *client.Client) error {
		return cl.Set(ctx, s.name, batch...)
	})
}

// MExpire changes the expiry of the existing keys among items.
func (s *Storage) MExpire(items ...kv.Item) error {
	c := s.begin(mMExpire)
	batch := make([]client.Item, 0, len(items))
	for _, it := range items {
		if it == nil {
			continue
		}
		if it.Timeout() == "" || blank(it.Key()) {
			return c.refuse(errors.E(opName(mMExpire), errors.Str("timeout for MExpire is empty or key is empty")))
		}
		if _, err := time.Parse(time.RFC3339, it.Timeout()); err != nil {
			return c.refuse(errors.E(opName(mMExpire), err))
		}
		batch = append(batch, client.Item{Key: it.Key(), Timeout: it.Timeout()})
	}
	if len(batch) == 0 {
		return c.ok()
	}
	return c.run(func(ctx context.Context, cl *client.Client) error {
		return cl.MExpire(ctx, s.name, batch...)
	})
}

// TTL returns the expiry of the existing keys, as the string it was set
// with; "" for a key without one.
func (s *Storage) TTL(keys ...string) (map[string]string, error) {
	c := s.begin(mTTL)
	if err := checkKeys(mTTL, keys); err != nil {
		return nil, c.refuse(err)
	}
	if len(keys) == 0 {
		return map[string]string{}, c.ok()
	}
	var out map[string]string
	err := c.run(func(ctx context.Context, cl *client.Client) error {
		var err error
		out, err = cl.TTL(ctx, s.name, keys...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Delete removes keys; missing ones are fine.
func (s *Storage) Delete(keys ...string) error {
	c := s.begin(mDelete)
	if err := checkKeys(mDelete, keys); err != nil {
		return c.refuse(err)
	}
	if len(keys) == 0 {
		return c.ok()
	}
	return c.run(func(ctx context.Context, cl *client.Client) error {
		return cl.Delete(ctx, s.name, keys...)
	})
}

// Clear removes every key of the storage, on the whole cluster.
func (s *Storage) Clear() error {
	c := s.begin(mClear)
	return c.run(func(ctx context.Context, cl *client.Client) error {
		return cl.Clear(ctx, s.name)
	})
}

// Stop is called by the kv plugin when RoadRunner stops; the last storage
// to stop closes the connections.
func (s *Storage) Stop() { s.release() }
