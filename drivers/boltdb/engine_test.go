package boltdb

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/kvnode/kvnode/drivers"
)

func TestSetGetHasTTL(t *testing.T) {
	e := newEngine(t)
	mustApply(t, e, 0, setOp(100*sec,
		item("a", "1", 0),
		item("b", "2", 200*sec),
		drivers.Item{Key: "empty", Value: []byte{}},
	))
	if got, want := has(t, e, 100*sec, "a", "b", "empty", "missing"), []string{"a", "b", "empty"}; !slices.Equal(got, want) {
		t.Fatalf("Has = %v, want %v", got, want)
	}
	want := map[string]string{"a": "1", "b": "2", "empty": ""}
	if got := values(t, e, 100*sec, "a", "b", "empty", "missing", "a"); !maps.Equal(got, want) {
		t.Fatalf("MGet = %v, want %v", got, want)
	}
	got := ttls(t, e, 100*sec, "a", "b", "missing")
	if len(got) != 2 || got["a"].Timeout != "" || got["a"].Deadline != 0 || got["b"].Timeout != "tb" || got["b"].Deadline != 200*sec {
		t.Fatalf("TTL = %+v", got)
	}
	if s := e.Stats(); s.Keys != 3 || s.Bytes != int64(len("a1b2empty")) {
		t.Fatalf("Stats = %+v", s)
	}
}

func TestDuplicateKeysCollapse(t *testing.T) {
	e := newEngine(t)
	mustApply(t, e, 0, setOp(sec, item("k", "first", 0), item("k", "last", 0)))
	if got := values(t, e, sec, "k", "k"); len(got) != 1 || got["k"] != "last" {
		t.Fatalf("MGet = %v", got)
	}
	if got := has(t, e, sec, "k", "k"); len(got) != 1 {
		t.Fatalf("Has = %v", got)
	}
	if s := e.Stats(); s.Keys != 1 {
		t.Fatalf("Stats = %+v", s)
	}
}

func TestDeadlineBoundary(t *testing.T) {
	e := newEngine(t)
	d := 50 * sec
	mustApply(t, e, 0, setOp(10*sec, item("k", "v", d)))
	if got := has(t, e, d-1, "k"); len(got) != 1 {
		t.Fatalf("one ns before the deadline: Has = %v, want the key", got)
	}
	for _, now := range []int64{d, d + 1} {
		if got := has(t, e, now, "k"); len(got) != 0 {
			t.Fatalf("now=%d: Has = %v, want nothing", now, got)
		}
		if got := values(t, e, now, "k"); len(got) != 0 {
			t.Fatalf("now=%d: MGet = %v", now, got)
		}
		if got := ttls(t, e, now, "k"); len(got) != 0 {
			t.Fatalf("now=%d: TTL = %v", now, got)
		}
	}
}

func TestSetExpiredRemoves(t *testing.T) {
	e := newEngine(t)
	mustApply(t, e, 0, setOp(10*sec, item("k", "old", 0)))
	// A deadline equal to now is already expired: the key goes away.
	mustApply(t, e, 0, setOp(20*sec, item("k", "new", 20*sec)))
	if got := values(t, e, 0, "k"); len(got) != 0 {
		t.Fatalf("MGet even at now=0 = %v, want the key removed", got)
	}
	if s := e.Stats(); s.Keys != 0 || s.Bytes != 0 {
		t.Fatalf("Stats = %+v", s)
	}
	if got, _ := e.Expired(1<<62, 10); len(got) != 0 {
		t.Fatalf("Expired = %v, want no index entry", got)
	}
}

func TestSetReplacesTTL(t *testing.T) {
	e := newEngine(t)
	mustApply(t, e, 0, setOp(sec, item("k", "v1", 10*sec)))
	mustApply(t, e, 0, setOp(sec, item("k", "v2", 0)))
	got := ttls(t, e, 20*sec, "k")
	if it, ok := got["k"]; !ok || it.Timeout != "" || it.Deadline != 0 {
		t.Fatalf("after Set without timeout, TTL = %+v, want key without expiry", got)
	}
	if ex, _ := e.Expired(1<<62, 10); len(ex) != 0 {
		t.Fatalf("Expired = %v, want the old index entry gone", ex)
	}
	mustApply(t, e, 0, setOp(sec, item("k", "v3", 30*sec)))
	mustApply(t, e, 0, setOp(sec, item("k", "v4", 40*sec)))
	ex, err := e.Expired(1<<62, 10)
	if err != nil || len(ex) != 1 || ex[0].Deadline != 40*sec {
		t.Fatalf("Expired = %v, %v; want one entry at 40s", ex, err)
	}
}

func TestDeleteRemovesTTL(t *testing.T) {
	e := newEngine(t)
	mustApply(t, e, 0, setOp(sec, item("k", "v", 10*sec), item("other", "o", 0)))
	mustApply(t, e, 0, drivers.Op{Kind: drivers.OpDelete, Now: sec, Keys: []string{"k", "missing"}})
	mustApply(t, e, 0, setOp(sec, item("k", "again", 0)))
	if got := ttls(t, e, 100*sec, "k"); got["k"].Deadline != 0 || got["k"].Timeout != "" {
		t.Fatalf("re-set key kept the deleted key's TTL: %+v", got)
	}
	if got := values(t, e, 100*sec, "k", "other"); got["k"] != "again" || got["other"] != "o" {
		t.Fatalf("MGet = %v", got)
	}
}

func TestMExpire(t *testing.T) {
	e := newEngine(t)
	now := 10 * sec
	mustApply(t, e, 0, setOp(now,
		item("plain", "p", 0),
		item("ttl", "t", 100*sec),
		item("gone", "g", 15*sec),
		item("drop", "d", 0),
	))
	mustApply(t, e, 0, drivers.Op{Kind: drivers.OpMExpire, Now: 20 * sec, Items: []drivers.Item{
		{Key: "plain", Timeout: "T1", Deadline: 50 * sec},
		{Key: "ttl", Timeout: "T2", Deadline: 60 * sec},
		{Key: "gone", Timeout: "T3", Deadline: 70 * sec},    // expired at 15s: ignored
		{Key: "missing", Timeout: "T4", Deadline: 70 * sec}, // ignored, not created
		{Key: "drop", Timeout: "T5", Deadline: 20 * sec},    // deadline == now: removed
	}})
	got := ttls(t, e, 20*sec, "plain", "ttl", "gone", "missing", "drop")
	want := map[string]drivers.Item{
		"plain": {Key: "plain", Timeout: "T1", Deadline: 50 * sec},
		"ttl":   {Key: "ttl", Timeout: "T2", Deadline: 60 * sec},
	}
	if !maps.EqualFunc(got, want, func(a, b drivers.Item) bool {
		return a.Key == b.Key && a.Timeout == b.Timeout && a.Deadline == b.Deadline
	}) {
		t.Fatalf("TTL = %+v, want %+v", got, want)
	}
	if got := values(t, e, 20*sec, "plain", "ttl"); got["plain"] != "p" || got["ttl"] != "t" {
		t.Fatalf("MExpire changed values: %v", got)
	}
	if got := values(t, e, 0, "gone", "missing", "drop"); len(got) != 1 || got["gone"] != "g" {
		t.Fatalf("at now=0 MGet = %v, want only the untouched expired key", got)
	}
	if got := has(t, e, 59*sec, "ttl"); len(got) != 1 {
		t.Fatalf("the old deadline (100s) should be replaced by 60s")
	}
	if got := has(t, e, 60*sec, "ttl"); len(got) != 0 {
		t.Fatalf("key alive at its new deadline")
	}
}

func TestClearKeepsAppliedIndex(t *testing.T) {
	e := newEngine(t)
	mustApply(t, e, 7, setOp(sec, item("a", "1", 0), item("b", "2", 10*sec)))
	mustApply(t, e, 8, drivers.Op{Kind: drivers.OpClear, Now: sec}, setOp(sec, item("c", "3", 0)))
	if got := has(t, e, sec, "a", "b", "c"); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("Has = %v", got)
	}
	if ex, _ := e.Expired(1<<62, 10); len(ex) != 0 {
		t.Fatalf("Expired after Clear = %v", ex)
	}
	if e.AppliedIndex() != 8 {
		t.Fatalf("AppliedIndex = %d", e.AppliedIndex())
	}
	if s := e.Stats(); s.Keys != 1 || s.Bytes != 2 {
		t.Fatalf("Stats = %+v", s)
	}
}

func TestExpireCompareAndDelete(t *testing.T) {
	e := newEngine(t)
	mustApply(t, e, 0, setOp(sec, item("a", "1", 10*sec), item("b", "2", 20*sec), item("c", "3", 30*sec), item("p", "4", 0)))
	ex, err := e.Expired(20*sec, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 2 || ex[0].Key != "a" || ex[0].Deadline != 10*sec || ex[1].Key != "b" || ex[1].Deadline != 20*sec {
		t.Fatalf("Expired(20s) = %+v", ex)
	}
	if one, _ := e.Expired(20*sec, 1); len(one) != 1 || one[0].Key != "a" {
		t.Fatalf("Expired with limit 1 = %+v", one)
	}
	// "b" is set again after the sweeper saw it: the expire must spare it.
	mustApply(t, e, 0, setOp(21*sec, item("b", "new", 100*sec)))
	mustApply(t, e, 0, drivers.Op{Kind: drivers.OpExpire, Now: 21 * sec, Items: append(ex, drivers.Item{Key: "p"})})
	if got := values(t, e, 0, "a", "b", "c", "p"); !maps.Equal(got, map[string]string{"b": "new", "c": "3", "p": "4"}) {
		t.Fatalf("after expire MGet = %v", got)
	}
	if ex, _ := e.Expired(1<<62, 10); len(ex) != 2 {
		t.Fatalf("index = %+v, want c and b", ex)
	}
}

func TestApplyValidationIsPerOp(t *testing.T) {
	e := newEngine(t)
	mustApply(t, e, 0, setOp(sec, item("keep", "old", 0)))
	errs, err := e.Apply(3, []drivers.Op{
		setOp(sec, item("x", "1", 0)),
		setOp(sec, item("keep", "new", 0), item("  ", "blank", 0)),
		{Kind: 99, Now: sec},
		{Kind: drivers.OpDelete, Now: sec, Keys: []string{"x", ""}},
		setOp(sec, item("y", "2", 0)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[4] != nil {
		t.Fatalf("valid ops failed: %v", errs)
	}
	if !errors.Is(errs[1], drivers.ErrEmptyKey) || !errors.Is(errs[3], drivers.ErrEmptyKey) {
		t.Fatalf("blank keys: errs = %v", errs)
	}
	if !errors.Is(errs[2], drivers.ErrUnknownOp) {
		t.Fatalf("unknown op: %v", errs[2])
	}
	if got := values(t, e, sec, "keep", "x", "y"); !maps.Equal(got, map[string]string{"keep": "old", "x": "1", "y": "2"}) {
		t.Fatalf("MGet = %v: a refused op must change nothing", got)
	}
	if e.AppliedIndex() != 3 {
		t.Fatalf("AppliedIndex = %d", e.AppliedIndex())
	}
}

func TestClosed(t *testing.T) {
	e := newEngine(t)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Has(0, []string{"k"}); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Has after Close: %v", err)
	}
	if _, err := e.Apply(1, []drivers.Op{setOp(1, item("k", "v", 0))}); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Apply after Close: %v", err)
	}
	if _, err := e.Snapshot(); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Snapshot after Close: %v", err)
	}
}
