package memory

import (
	"slices"
	"testing"

	"github.com/kvnode/kvnode/drivers"
)

// it builds an item; deadline 0 means no expiry.
func it(key, val, timeout string, deadline int64) drivers.Item {
	return drivers.Item{Key: key, Value: []byte(val), Timeout: timeout, Deadline: deadline}
}

func setOp(now int64, items ...drivers.Item) drivers.Op {
	return drivers.Op{Kind: drivers.OpSet, Now: now, Items: items}
}

func mexpireOp(now int64, items ...drivers.Item) drivers.Op {
	return drivers.Op{Kind: drivers.OpMExpire, Now: now, Items: items}
}

func expireOp(now int64, items ...drivers.Item) drivers.Op {
	return drivers.Op{Kind: drivers.OpExpire, Now: now, Items: items}
}

func deleteOp(now int64, keys ...string) drivers.Op {
	return drivers.Op{Kind: drivers.OpDelete, Now: now, Keys: keys}
}

// mustApply applies ops and fails the test on any error.
func mustApply(t testing.TB, e drivers.Engine, ops ...drivers.Op) {
	t.Helper()
	errs, err := e.Apply(0, ops)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Apply op %d (%s): %v", i, ops[i].Kind, err)
		}
	}
}

// state is a comparable rendering of what reads return at now.
type state map[string]drivers.Item

// read returns everything MGet and TTL serve at now for keys, and checks
// that Has agrees with them.
func read(t testing.TB, e drivers.Engine, now int64, keys ...string) state {
	t.Helper()
	vals, err := e.MGet(now, keys)
	if err != nil {
		t.Fatalf("MGet: %v", err)
	}
	ttls, err := e.TTL(now, keys)
	if err != nil {
		t.Fatalf("TTL: %v", err)
	}
	has, err := e.Has(now, keys)
	if err != nil {
		t.Fatalf("Has: %v", err)
	}
	got := state{}
	for _, v := range vals {
		if _, dup := got[v.Key]; dup {
			t.Fatalf("MGet returned %q twice", v.Key)
		}
		if v.Value == nil {
			t.Fatalf("MGet returned nil value for %q", v.Key)
		}
		got[v.Key] = drivers.Item{Key: v.Key, Value: v.Value}
	}
	if len(ttls) != len(got) || len(has) != len(got) {
		t.Fatalf("MGet found %d keys, TTL %d, Has %d", len(got), len(ttls), len(has))
	}
	for _, x := range ttls {
		g, ok := got[x.Key]
		if !ok {
			t.Fatalf("TTL returned %q that MGet did not", x.Key)
		}
		g.Timeout, g.Deadline = x.Timeout, x.Deadline
		got[x.Key] = g
	}
	for _, k := range has {
		if _, ok := got[k]; !ok {
			t.Fatalf("Has returned %q that MGet did not", k)
		}
	}
	return got
}

func wantState(t testing.TB, got state, want ...drivers.Item) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d keys %v, want %d %v", len(got), render(got), len(want), want)
	}
	for _, w := range want {
		g, ok := got[w.Key]
		if !ok {
			t.Fatalf("key %q missing; got %v", w.Key, render(got))
		}
		if string(g.Value) != string(w.Value) || g.Timeout != w.Timeout || g.Deadline != w.Deadline {
			t.Fatalf("key %q = {%q %q %d}, want {%q %q %d}", w.Key,
				g.Value, g.Timeout, g.Deadline, w.Value, w.Timeout, w.Deadline)
		}
	}
}

func render(s state) []string {
	out := make([]string, 0, len(s))
	for k, v := range s {
		out = append(out, k+"="+string(v.Value)+"|"+v.Timeout)
	}
	slices.Sort(out)
	return out
}
