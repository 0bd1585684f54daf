package rpc

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kvnode/kvnode/drivers"
)

// storage is a configured Storage as the hot path uses it.
type storage struct {
	name        string
	driver      drivers.Driver
	store       drivers.Store
	inline      bool
	readsInline func() bool
}

// inlineFor reports whether m may be served on the connection's reader.
func (st *storage) inlineFor(m method) bool {
	if st.inline {
		return true
	}
	return st.readsInline != nil && (m == mHas || m == mMGet || m == mTTL) && st.readsInline()
}

// call serves one decoded request: it validates the whole request, then
// calls the Store once. Nothing reaches the Store unless every item is
// valid, so a bad item changes nothing.
func (s *Server) call(ctx context.Context, r *request) (result, error) {
	var span trace.Span
	if s.tracer != nil {
		ctx, span = s.tracer.Start(ctx, spanName[r.m], trace.WithSpanKind(trace.SpanKindServer))
		if span.IsRecording() {
			span.SetAttributes(
				attribute.String("kv.storage", r.storage),
				attribute.Int("kv.keys", len(r.items)),
			)
		}
	}
	res, err := s.dispatch(ctx, r)
	if span != nil {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	return res, err
}

func (s *Server) dispatch(ctx context.Context, r *request) (result, error) {
	m := r.m
	// RoadRunner's Set looks the name up without checking for an empty one
	// first, hence "rpc_set: no such storage: " for an empty name.
	if r.storage == "" && m != mSet {
		return result{}, errNoStorage(m)
	}
	st := r.st
	if st == nil {
		return result{}, errUnknownStorage(m, r.storage)
	}
	dctx := withDeadline(ctx, time.Now().Add(s.cfg.RequestTimeout))
	defer dctx.release()
	ctx = dctx

	switch m {
	case mTTL:
		if st.driver.TTLRefusal != "" {
			// RoadRunner's memcached driver refuses every TTL before it
			// looks at the keys, even none or blank ones; the Store says so.
			return s.read(ctx, m, st, nil)
		}
		fallthrough
	case mHas, mMGet, mDelete:
		if r.blank {
			return result{}, errEmptyKey(m, st.driver)
		}
		keys := uniqueKeys(r.items)
		if len(keys) == 0 {
			return result{}, nil
		}
		return s.read(ctx, m, st, keys)
	case mSet:
		items, err := setItems(st.driver, r.items, r.blank)
		if err != nil || len(items) == 0 {
			return result{}, err
		}
		if err := st.store.Set(ctx, items); err != nil {
			return result{}, errStore(m, st.driver, err)
		}
	case mMExpire:
		items, err := mexpireItems(st.driver, r.items, r.blank)
		if err != nil || len(items) == 0 {
			return result{}, err
		}
		if err := st.store.MExpire(ctx, items); err != nil {
			return result{}, errStore(m, st.driver, err)
		}
	case mClear:
		// Clear ignores items, as RoadRunner does.
		if err := st.store.Clear(ctx); err != nil {
			return result{}, errStore(m, st.driver, err)
		}
	}
	return result{}, nil
}

// read serves the methods that take only keys.
func (s *Server) read(ctx context.Context, m method, st *storage, keys []string) (result, error) {
	var (
		res result
		err error
	)
	switch m {
	case mHas:
		res.keys, err = st.store.Has(ctx, keys)
	case mMGet:
		res.items, err = st.store.MGet(ctx, keys)
	case mTTL:
		res.items, err = st.store.TTL(ctx, keys)
	case mDelete:
		err = st.store.Delete(ctx, keys)
	}
	if err != nil {
		return result{}, errStore(m, st.driver, err)
	}
	return res, nil
}

// smallDedup is the item count up to which duplicates are found by
// comparing pairs rather than with a map: cheaper for the usual 1-10 keys.
const smallDedup = 16

// uniqueKeys returns the keys of items, each once in first-seen order.
// Decoding already refused blank keys.
func uniqueKeys(items []drivers.Item) []string {
	keys := make([]string, 0, len(items))
	var seen map[string]struct{}
	if len(items) > smallDedup {
		seen = make(map[string]struct{}, len(items))
	}
next:
	for i := range items {
		k := items[i].Key
		if seen != nil {
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
		} else {
			for _, prev := range keys {
				if prev == k {
					continue next
				}
			}
		}
		keys = append(keys, k)
	}
	return keys
}

// setItems validates Set's items (timeouts, then the blank key decoding
// stopped at, so errors come in item order) and returns them with deadlines
// parsed and duplicates collapsed, the last one winning.
func setItems(driver drivers.Driver, items []drivers.Item, blank bool) ([]drivers.Item, error) {
	for i := range items {
		it := &items[i]
		d, err := drivers.ParseTimeout(it.Timeout)
		if err != nil {
			return nil, errBadTimeout(mSet, driver, err)
		}
		it.Deadline = d
	}
	if blank {
		return nil, errEmptyKey(mSet, driver)
	}
	return lastWins(items), nil
}

// mexpireItems validates MExpire's items: each needs a key and a timeout.
// Values are not passed on: MExpire keeps the stored ones.
func mexpireItems(driver drivers.Driver, items []drivers.Item, blank bool) ([]drivers.Item, error) {
	for i := range items {
		it := &items[i]
		if it.Timeout == "" {
			return nil, errMExpireItem(driver)
		}
		d, err := drivers.ParseTimeout(it.Timeout)
		if err != nil {
			return nil, errBadTimeout(mMExpire, driver, err)
		}
		it.Deadline = d
		it.Value = nil
	}
	if blank {
		return nil, errMExpireItem(driver)
	}
	return lastWins(items), nil
}

// lastWins copies items into a new slice the Store may keep, dropping every
// item whose key appears again later.
func lastWins(items []drivers.Item) []drivers.Item {
	out := make([]drivers.Item, 0, len(items))
	if len(items) <= smallDedup {
	next:
		for i := range items {
			for j := i + 1; j < len(items); j++ {
				if items[j].Key == items[i].Key {
					continue next
				}
			}
			out = append(out, items[i])
		}
		return out
	}
	last := make(map[string]int, len(items))
	for i := range items {
		last[items[i].Key] = i
	}
	for i := range items {
		if last[items[i].Key] == i {
			out = append(out, items[i])
		}
	}
	return out
}
