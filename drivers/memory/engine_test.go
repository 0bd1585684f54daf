package memory

import (
	"errors"
	"slices"
	"testing"

	"github.com/kvnode/kvnode/drivers"
)

const (
	t0 = int64(1_000_000_000_000) // an arbitrary "now"
	ts = "2026-01-01T00:00:00Z"   // timeout text; the engine only echoes it
)

func TestEngine_ExpiryBoundary(t *testing.T) {
	e := New()
	d := t0 + 500
	mustApply(t, e, setOp(t0, it("k", "v", ts, d)))
	for _, tc := range []struct {
		name    string
		now     int64
		visible bool
	}{
		{"well before", t0, true},
		{"one nanosecond before", d - 1, true},
		{"at deadline", d, false},
		{"after deadline", d + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := read(t, e, tc.now, "k")
			if tc.visible {
				wantState(t, got, it("k", "v", ts, d))
			} else {
				wantState(t, got)
			}
		})
	}
	// Hidden is not deleted: the key stays until swept.
	if s := e.Stats(); s.Keys != 1 {
		t.Fatalf("Stats.Keys = %d after expiry, want 1 until swept", s.Keys)
	}
}

func TestEngine_Set(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []drivers.Op
		now  int64
		want []drivers.Item
	}{
		{"no timeout", []drivers.Op{setOp(t0, it("a", "1", "", 0))}, t0 + 1e18, []drivers.Item{it("a", "1", "", 0)}},
		{"future deadline", []drivers.Op{setOp(t0, it("a", "1", ts, t0+10))}, t0, []drivers.Item{it("a", "1", ts, t0+10)}},
		{"deadline equal to op.Now stores nothing",
			[]drivers.Op{setOp(t0, it("a", "1", ts, t0))}, t0 - 5, nil},
		{"past deadline removes previous value", []drivers.Op{
			setOp(t0, it("a", "1", "", 0)),
			setOp(t0, it("a", "2", ts, t0-1)),
		}, t0 - 5, nil},
		{"negative deadline is expired", []drivers.Op{setOp(t0, it("a", "1", ts, -3))}, t0, nil},
		{"re-set without timeout clears TTL", []drivers.Op{
			setOp(t0, it("a", "1", ts, t0+10)),
			setOp(t0, it("a", "2", "", 0)),
		}, t0 + 20, []drivers.Item{it("a", "2", "", 0)}},
		{"re-set replaces timeout", []drivers.Op{
			setOp(t0, it("a", "1", ts, t0+10)),
			setOp(t0, it("a", "2", "later", t0+30)),
		}, t0 + 20, []drivers.Item{it("a", "2", "later", t0+30)}},
		{"duplicates in one op: last wins", []drivers.Op{
			setOp(t0, it("a", "1", "", 0), it("b", "x", "", 0), it("a", "2", ts, t0+9)),
		}, t0, []drivers.Item{it("a", "2", ts, t0+9), it("b", "x", "", 0)}},
		{"duplicate with expired last removes", []drivers.Op{
			setOp(t0, it("a", "1", "", 0), it("a", "2", ts, t0)),
		}, t0, nil},
		{"empty value is served", []drivers.Op{setOp(t0, it("a", "", "", 0))}, t0, []drivers.Item{it("a", "", "", 0)}},
		{"nil value is served", []drivers.Op{setOp(t0, drivers.Item{Key: "a"})}, t0, []drivers.Item{it("a", "", "", 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := New()
			mustApply(t, e, tc.ops...)
			wantState(t, read(t, e, tc.now, "a", "b"), tc.want...)
			checkInvariants(t, e)
		})
	}
}

func TestEngine_MExpire(t *testing.T) {
	base := []drivers.Op{setOp(t0,
		it("plain", "p", "", 0),
		it("ttl", "t", ts, t0+100),
		it("gone", "g", ts, t0+5),
	)}
	for _, tc := range []struct {
		name string
		op   drivers.Op
		now  int64
		want []drivers.Item
	}{
		{"adds TTL to key without one, keeps value",
			mexpireOp(t0, it("plain", "", "new", t0+50)), t0 + 49,
			[]drivers.Item{it("plain", "p", "new", t0+50), it("ttl", "t", ts, t0+100)}},
		{"updates timeout string and deadline",
			mexpireOp(t0, it("ttl", "", "new", t0+200)), t0 + 150,
			[]drivers.Item{it("plain", "p", "", 0), it("ttl", "t", "new", t0+200)}},
		{"shortens TTL",
			mexpireOp(t0, it("ttl", "", "new", t0+10)), t0 + 10,
			[]drivers.Item{it("plain", "p", "", 0)}},
		{"missing key is ignored, not created",
			mexpireOp(t0, it("nope", "", "new", t0+50)), t0,
			[]drivers.Item{it("plain", "p", "", 0), it("ttl", "t", ts, t0+100), it("gone", "g", ts, t0+5)}},
		{"expired unswept key is ignored",
			mexpireOp(t0+5, it("gone", "", "new", t0+50)), t0 + 6,
			[]drivers.Item{it("plain", "p", "", 0), it("ttl", "t", ts, t0+100)}},
		{"deadline not after now removes",
			mexpireOp(t0+1, it("plain", "", "past", t0+1), it("ttl", "", "past", t0)), t0 + 1,
			[]drivers.Item{it("gone", "g", ts, t0+5)}},
		{"deadline 0 removes the TTL",
			mexpireOp(t0, it("ttl", "", "", 0)), t0 + 1000,
			[]drivers.Item{it("plain", "p", "", 0), it("ttl", "t", "", 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := New()
			mustApply(t, e, base...)
			mustApply(t, e, tc.op)
			wantState(t, read(t, e, tc.now, "plain", "ttl", "gone", "nope"), tc.want...)
			checkInvariants(t, e)
		})
	}
}

func TestEngine_DeleteClearExpire(t *testing.T) {
	base := []drivers.Op{setOp(t0,
		it("plain", "p", "", 0),
		it("ttl", "t", ts, t0+100),
	)}
	all := []drivers.Item{it("plain", "p", "", 0), it("ttl", "t", ts, t0+100)}
	for _, tc := range []struct {
		name string
		op   drivers.Op
		want []drivers.Item
	}{
		{"delete existing and missing", deleteOp(t0, "ttl", "nope"), []drivers.Item{it("plain", "p", "", 0)}},
		{"delete nothing", deleteOp(t0), all},
		{"clear", drivers.Op{Kind: drivers.OpClear, Now: t0}, nil},
		{"expire with matching deadline", expireOp(t0+100, drivers.Item{Key: "ttl", Deadline: t0 + 100}),
			[]drivers.Item{it("plain", "p", "", 0)}},
		{"expire with stale deadline keeps key", expireOp(t0+100, drivers.Item{Key: "ttl", Deadline: t0 + 99}), all},
		{"expire of key without TTL keeps key", expireOp(t0, drivers.Item{Key: "plain"}), all},
		{"expire of missing key", expireOp(t0, drivers.Item{Key: "nope", Deadline: 1}), all},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := New()
			mustApply(t, e, base...)
			mustApply(t, e, tc.op)
			wantState(t, read(t, e, t0, "plain", "ttl"), tc.want...)
			checkInvariants(t, e)
		})
	}
}

func TestEngine_ExpireAfterReset(t *testing.T) {
	// The sweeper saw k expired, then a client re-set it before the
	// OpExpire was applied: the new value must survive.
	e := New()
	mustApply(t, e, setOp(t0, it("k", "old", ts, t0+1)))
	seen, err := e.Expired(t0+1, 10)
	if err != nil || len(seen) != 1 {
		t.Fatalf("Expired = %v, %v", seen, err)
	}
	mustApply(t, e, setOp(t0+2, it("k", "new", ts, t0+50)))
	mustApply(t, e, expireOp(t0+3, seen...))
	wantState(t, read(t, e, t0+3, "k"), it("k", "new", ts, t0+50))
}

func TestEngine_ApplyBatch(t *testing.T) {
	e := New()
	mustApply(t, e, setOp(t0, it("keep", "old", "", 0)))
	ops := []drivers.Op{
		setOp(t0, it("a", "1", "", 0)),
		{Kind: 99, Now: t0, Keys: []string{"a"}},
		setOp(t0, it("keep", "new", "", 0), it("  ", "blank", "", 0)),
		deleteOp(t0, "a", ""),
		setOp(t0, it("b", "2", "", 0)),
	}
	errs, err := e.Apply(7, ops)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(errs) != len(ops) {
		t.Fatalf("len(errs) = %d, want %d", len(errs), len(ops))
	}
	for i, want := range []error{nil, drivers.ErrUnknownOp, drivers.ErrEmptyKey, drivers.ErrEmptyKey, nil} {
		if !errors.Is(errs[i], want) || (want == nil) != (errs[i] == nil) {
			t.Errorf("errs[%d] = %v, want %v", i, errs[i], want)
		}
	}
	wantState(t, read(t, e, t0, "a", "b", "keep", "  "),
		it("a", "1", "", 0), it("b", "2", "", 0), it("keep", "old", "", 0))
	if got := e.AppliedIndex(); got != 7 {
		t.Fatalf("AppliedIndex = %d, want 7", got)
	}
}

func TestEngine_ReadsCollapseDuplicates(t *testing.T) {
	e := New()
	mustApply(t, e, setOp(t0, it("a", "1", "", 0), it("b", "2", ts, t0+1)))
	many := make([]string, 0, 40)
	for range 20 {
		many = append(many, "b", "a")
	}
	for _, tc := range []struct {
		keys []string
		want []string
	}{
		{[]string{"a", "a"}, []string{"a"}},
		{[]string{"a", "b", "a", "missing", "b"}, []string{"a", "b"}},
		{many, []string{"b", "a"}},
	} {
		has, _ := e.Has(t0, tc.keys)
		if !slices.Equal(has, tc.want) {
			t.Fatalf("Has(%v) = %v, want %v", tc.keys, has, tc.want)
		}
		vals, _ := e.MGet(t0, tc.keys)
		ttls, _ := e.TTL(t0, tc.keys)
		if len(vals) != len(tc.want) || len(ttls) != len(tc.want) {
			t.Fatalf("MGet/TTL(%v) = %v / %v, want %d items", tc.keys, vals, ttls, len(tc.want))
		}
	}
	if got, _ := e.Has(t0, nil); len(got) != 0 {
		t.Fatalf("Has(nil) = %v", got)
	}
}

func TestEngine_Expired(t *testing.T) {
	e := New()
	mustApply(t, e, setOp(t0,
		it("c", "", ts, t0+3), it("a", "", ts, t0+3), it("late", "", ts, t0+100),
		it("first", "", ts, t0+1), it("plain", "", "", 0), it("b", "", ts, t0+2),
	))
	for _, tc := range []struct {
		now   int64
		limit int
		want  []string
	}{
		{t0, 10, nil},
		{t0 + 1, 10, []string{"first"}},
		{t0 + 3, 10, []string{"first", "b", "a", "c"}},
		{t0 + 3, 2, []string{"first", "b"}},
		{t0 + 3, 0, nil},
		{t0 + 1000, 100, []string{"first", "b", "a", "c", "late"}},
	} {
		got, err := e.Expired(tc.now, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("Expired(%d, %d) = %v, want %v", tc.now-t0, tc.limit, got, tc.want)
		}
		for i, g := range got {
			if g.Key != tc.want[i] {
				t.Fatalf("Expired(%d, %d)[%d] = %q, want %q", tc.now-t0, tc.limit, i, g.Key, tc.want[i])
			}
			if g.Deadline == 0 || g.Deadline > tc.now {
				t.Fatalf("Expired returned %q with deadline %d at now %d", g.Key, g.Deadline, tc.now)
			}
		}
	}
}

func TestEngine_Stats(t *testing.T) {
	e := New()
	check := func(keys, bytes int64) {
		t.Helper()
		if s := e.Stats(); s.Keys != keys || s.Bytes != bytes {
			t.Fatalf("Stats = %+v, want {%d %d}", s, keys, bytes)
		}
	}
	check(0, 0)
	mustApply(t, e, setOp(t0, it("ab", "123", "", 0), it("c", "", ts, t0+1)))
	check(2, 6)
	mustApply(t, e, setOp(t0, it("ab", "1", "", 0)))
	check(2, 4)
	mustApply(t, e, mexpireOp(t0, it("ab", "", ts, t0+5)))
	check(2, 4)
	mustApply(t, e, deleteOp(t0, "c", "zz"))
	check(1, 3)
	mustApply(t, e, setOp(t0, it("ab", "x", ts, t0)))
	check(0, 0)
	mustApply(t, e, setOp(t0, it("x", "yy", "", 0)), drivers.Op{Kind: drivers.OpClear})
	check(0, 0)
}

func TestEngine_Closed(t *testing.T) {
	e := New()
	mustApply(t, e, setOp(t0, it("a", "1", "", 0)))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := e.Has(t0, []string{"a"}); !errors.Is(err, drivers.ErrClosed) {
		t.Errorf("Has: %v", err)
	}
	if _, err := e.MGet(t0, []string{"a"}); !errors.Is(err, drivers.ErrClosed) {
		t.Errorf("MGet: %v", err)
	}
	if _, err := e.TTL(t0, []string{"a"}); !errors.Is(err, drivers.ErrClosed) {
		t.Errorf("TTL: %v", err)
	}
	if _, err := e.Expired(t0, 1); !errors.Is(err, drivers.ErrClosed) {
		t.Errorf("Expired: %v", err)
	}
	if _, err := e.Apply(1, []drivers.Op{setOp(t0, it("b", "", "", 0))}); !errors.Is(err, drivers.ErrClosed) {
		t.Errorf("Apply: %v", err)
	}
	if s := e.Stats(); s.Keys != 0 {
		t.Errorf("Stats after Close = %+v", s)
	}
}

func TestEngine_ReturnedValuesAreStable(t *testing.T) {
	e := New()
	mustApply(t, e, setOp(t0, it("k", "first", "", 0)))
	got, _ := e.MGet(t0, []string{"k"})
	mustApply(t, e, setOp(t0, it("k", "second", "", 0)), deleteOp(t0, "k"), setOp(t0, it("k", "third", "", 0)))
	if string(got[0].Value) != "first" {
		t.Fatalf("value read before later writes became %q", got[0].Value)
	}
	if cap(got[0].Value) != len(got[0].Value) {
		t.Fatalf("returned value has spare capacity %d: an append could write into the store", cap(got[0].Value))
	}
}
