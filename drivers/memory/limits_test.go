package memory

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/drivers"
)

func limitOp(l drivers.Limits) drivers.Op { return drivers.Op{Kind: drivers.OpLimit, Limits: l} }

// apply1 applies one op and returns its own error.
func apply1(t testing.TB, e *Engine, op drivers.Op) error {
	t.Helper()
	errs, err := e.Apply(0, []drivers.Op{op})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return errs[0]
}

func TestLimits_RejectFailsMultiItemSetWhole(t *testing.T) {
	e := New()
	// Room for exactly three 1-byte keys with 10-byte values.
	per := drivers.EntryUsage(1, 10, false)
	mustApply(t, e, limitOp(drivers.Limits{MaxBytes: 3 * per}))
	mustApply(t, e, setOp(t0, it("a", "0123456789", "", 0), it("b", "0123456789", "", 0)))
	before := mustHash(t, e)
	err := apply1(t, e, setOp(t0, it("c", "0123456789", "", 0), it("d", "0123456789", "", 0)))
	if !errors.Is(err, drivers.ErrFull) {
		t.Fatalf("Set past the limit: %v, want ErrFull", err)
	}
	if got := mustHash(t, e); got != before {
		t.Fatal("a refused Set changed the state")
	}
	if s := e.Stats(); s.Rejected != 1 || s.Usage != 2*per {
		t.Fatalf("Stats = %+v", s)
	}
	// Overwriting in place and a write that frees room still go through.
	mustApply(t, e, setOp(t0, it("a", "9876543210", "", 0)))
	mustApply(t, e, setOp(t0, it("a", "x", "", 0), it("c", "0123456789", "", 0)))
	// A TTL costs ExpiryOverhead: the full storage cannot give b one.
	mustApply(t, e, setOp(t0, it("a", "0123456789", "", 0)))
	if err := apply1(t, e, mexpireOp(t0, it("b", "", "later", t0+1e9))); !errors.Is(err, drivers.ErrFull) {
		t.Fatalf("MExpire adding a TTL at the limit: %v, want ErrFull", err)
	}
}

func TestLimits_MaxKeys(t *testing.T) {
	e := New()
	mustApply(t, e, limitOp(drivers.Limits{MaxKeys: 2}))
	mustApply(t, e, setOp(t0, it("a", "1", "", 0), it("b", "1", "", 0), it("a", "2", "", 0)))
	if err := apply1(t, e, setOp(t0, it("c", "1", "", 0))); !errors.Is(err, drivers.ErrFull) {
		t.Fatalf("third key: %v, want ErrFull", err)
	}
	// Replacing one key with another in one op fits.
	mustApply(t, e, setOp(t0, it("a", "", "past", t0-1), it("c", "1", "", 0)))
	wantState(t, read(t, e, t0, "a", "b", "c"), it("b", "1", "", 0), it("c", "1", "", 0))
}

func TestLimits_OpLimitRefusedWhileOver(t *testing.T) {
	e := New()
	mustApply(t, e, setOp(t0, it("a", "0123456789", "", 0), it("b", "0123456789", "", 0)))
	if err := apply1(t, e, limitOp(drivers.Limits{MaxKeys: 1})); !errors.Is(err, drivers.ErrFull) {
		t.Fatalf("limit below the contents: %v, want ErrFull", err)
	}
	if s := e.Stats(); s.Limits.Bounded() {
		t.Fatalf("refused limit installed: %+v", s.Limits)
	}
	mustApply(t, e, limitOp(drivers.Limits{MaxKeys: 2, Policy: drivers.PolicyLRU}))
	if s := e.Stats(); s.Limits != (drivers.Limits{MaxKeys: 2, Policy: drivers.PolicyLRU}) {
		t.Fatalf("Limits = %+v", s.Limits)
	}
}

func TestEvict_CompareAndDelete(t *testing.T) {
	e := New()
	mustApply(t, e, setOp(t0, it("a", "old", "", 0), it("b", "old", "t", t0+100), it("c", "same", "", 0)))
	victims := []drivers.Victim{
		{Key: "a", Digest: drivers.ValueDigest([]byte("old"))},
		{Key: "b", Deadline: t0 + 100, Digest: drivers.ValueDigest([]byte("old"))},
		{Key: "c", Digest: drivers.ValueDigest([]byte("same"))},
		{Key: "missing"},
	}
	// Written again after the leader chose them: a's value and b's
	// deadline changed, c was written with the same value.
	mustApply(t, e, setOp(t0, it("a", "new", "", 0), it("b", "old", "t2", t0+200), it("c", "same", "", 0)))
	mustApply(t, e, drivers.Op{Kind: drivers.OpEvict, Now: t0, Reason: drivers.ReasonMemory, Victims: victims})
	wantState(t, read(t, e, t0, "a", "b", "c"), it("a", "new", "", 0), it("b", "old", "t2", t0+200))
	if s := e.Stats(); s.Evicted != 1 {
		t.Fatalf("Evicted = %d, want 1", s.Evicted)
	}
	checkInvariants(t, e)
}

// TestLimits_GrowthIsExact checks, over random ops, that Growth predicts
// exactly how each op changes the key count and usage, that a bounded
// engine never passes its limits, and that a refused op changes nothing.
func TestLimits_GrowthIsExact(t *testing.T) {
	for seed := range uint64(10) {
		r := rand.New(rand.NewPCG(seed, 2))
		e := modelEngine(64, ^uint64(0))
		now := t0
		mustApply(t, e, limitOp(drivers.Limits{MaxBytes: 8 * drivers.EntryUsage(3, 3, true), MaxKeys: 12, Policy: drivers.PolicyLRU}))
		refused := 0
		for step := range 400 {
			for _, op := range randomOps(r, e, 1, &now) {
				if r.IntN(8) == 0 {
					op = randomEvict(r, e, now)
				}
				before := e.Stats()
				dk, du := e.Growth(&op)
				hash := mustHash(t, e)
				err := apply1(t, e, op)
				after := e.Stats()
				switch {
				case errors.Is(err, drivers.ErrFull):
					refused++
					if mustHash(t, e) != hash {
						t.Fatalf("seed %d step %d: refused %s changed the state", seed, step, op.Kind)
					}
				case err != nil:
					t.Fatalf("seed %d step %d: %v", seed, step, err)
				case op.Kind == drivers.OpSet || op.Kind == drivers.OpMExpire:
					if after.Keys-before.Keys != dk || after.Usage-before.Usage != du {
						t.Fatalf("seed %d step %d: %s %+v changed keys by %d usage by %d; Growth said %d, %d",
							seed, step, op.Kind, op.Items, after.Keys-before.Keys, after.Usage-before.Usage, dk, du)
					}
				}
			}
			checkInvariants(t, e)
		}
		if refused == 0 {
			t.Errorf("seed %d: no write was ever refused: the limit was never reached", seed)
		}
	}
}

// randomEvict evicts a few sampled keys, some with stale digests.
func randomEvict(r *rand.Rand, e *Engine, now int64) drivers.Op {
	cs := e.Candidates(drivers.PolicyRandom, 3, 0, 0, nil)
	op := drivers.Op{Kind: drivers.OpEvict, Now: now, Reason: drivers.ReasonMemory}
	for _, c := range cs {
		if r.IntN(3) == 0 {
			c.Digest++
		}
		op.Victims = append(op.Victims, c.Victim)
	}
	return op
}

func TestCandidates_TTLNearestFirst(t *testing.T) {
	e := New()
	for i := range 50 {
		d := t0 + int64((i*37)%50+1)*1e9
		mustApply(t, e, setOp(t0, it("k"+strconv.Itoa(i), "v", "t", d)))
	}
	mustApply(t, e, setOp(t0, it("forever", "v", "", 0)))
	var all []drivers.Candidate
	for skip := 0; ; skip += 7 {
		cs := e.Candidates(drivers.PolicyTTL, 7, skip, 0, nil)
		if len(cs) == 0 {
			break
		}
		all = append(all, cs...)
	}
	if len(all) != 50 {
		t.Fatalf("%d candidates, want the 50 keys with a TTL", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Deadline < all[i-1].Deadline {
			t.Fatalf("candidate %d (%d) before a nearer deadline (%d)", i, all[i].Deadline, all[i-1].Deadline)
		}
	}
}

func TestCandidates_LRUAges(t *testing.T) {
	e := New()
	mustApply(t, e, limitOp(drivers.Limits{MaxKeys: 10, Policy: drivers.PolicyLRU}))
	sec := int64(1e9)
	mustApply(t, e, setOp(t0, it("old", "v", "", 0)))
	mustApply(t, e, setOp(t0+sec, it("read", "v", "", 0)))
	mustApply(t, e, setOp(t0+2*sec, it("new", "v", "", 0)))
	if _, err := e.MGet(t0+3*sec, []string{"read"}); err != nil {
		t.Fatal(err)
	}
	e.Touch(t0+4*sec, []string{"old", "absent"})
	stamp := func(k string) uint32 {
		c, ok := e.Peek(k, t0+5*sec)
		if !ok {
			t.Fatalf("Peek(%q) found nothing", k)
		}
		return c.Stamp
	}
	// old was touched last, then read was read; new was only written.
	if stamp("new") >= stamp("read") || stamp("read") >= stamp("old") {
		t.Fatalf("stamps new %d read %d old %d: want new < read < old", stamp("new"), stamp("read"), stamp("old"))
	}
	// Sampling finds every key eventually.
	seen := map[string]bool{}
	for range 200 {
		for _, c := range e.Candidates(drivers.PolicyLRU, 5, 0, 0, nil) {
			r, ok := e.Resolve(c)
			if !ok || r.Stamp != c.Stamp || r.Digest != drivers.ValueDigest([]byte("v")) {
				t.Fatalf("Resolve(%+v) = %+v, %v", c, r, ok)
			}
			seen[r.Key] = true
		}
	}
	if len(seen) != 3 {
		t.Fatalf("sampled %v, want all three keys", seen)
	}
	// A candidate whose key was written since does not resolve.
	c := e.Candidates(drivers.PolicyLRU, 1, 0, 0, nil)[0]
	r, _ := e.Resolve(c)
	mustApply(t, e, setOp(t0+6*sec, it(r.Key, "new", "", 0)))
	if r2, ok := e.Resolve(c); ok {
		t.Fatalf("Resolve after a write of %q = %+v", r.Key, r2)
	}
}

func TestSnapshot_KeepsLimits(t *testing.T) {
	e := New()
	l := drivers.Limits{MaxBytes: 1 << 20, MaxKeys: 100, Policy: drivers.PolicyTTL}
	mustApply(t, e, limitOp(l), setOp(t0, it("a", "1", "t", t0+1e9), it("b", "2", "", 0)))
	data := snapshotBytes(t, e)
	if data[len(snapMagic)] != snapVersionV2 {
		t.Fatalf("bounded snapshot has version %d, want %d", data[len(snapMagic)], snapVersionV2)
	}
	r := New()
	if err := r.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s.Limits != l || s.Usage != e.Stats().Usage {
		t.Fatalf("restored Stats = %+v, want limits %+v and usage %d", s, l, e.Stats().Usage)
	}
	if mustHash(t, r) != mustHash(t, e) {
		t.Fatal("restored hash differs")
	}
	// The limits are part of the hash; an unbounded engine still writes
	// version 1.
	u := New()
	mustApply(t, u, setOp(t0, it("a", "1", "t", t0+1e9), it("b", "2", "", 0)))
	if mustHash(t, u) == mustHash(t, e) {
		t.Fatal("limits do not change the hash")
	}
	if v := snapshotBytes(t, u)[len(snapMagic)]; v != snapVersion {
		t.Fatalf("unbounded snapshot has version %d, want %d", v, snapVersion)
	}
}

// TestRestore_RefusesStateOverItsOwnLimit checks that a snapshot whose
// keys pass the limits it carries is refused as it is read, before it is
// built whole: a damaged or forged stream cannot make restore allocate
// beyond the storage's limit.
func TestRestore_RefusesStateOverItsOwnLimit(t *testing.T) {
	e := New()
	for i := range 100 {
		mustApply(t, e, setOp(t0, it("k"+strconv.Itoa(i), "0123456789", "", 0)))
	}
	e.limits = drivers.Limits{MaxBytes: 10 * drivers.EntryUsage(3, 10, false)} // forged: the engine holds more
	err := New().Restore(bytes.NewReader(snapshotBytes(t, e)))
	if !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("Restore of a state over its own max_memory: %v, want ErrBadSnapshot", err)
	}
	e.limits = drivers.Limits{MaxKeys: 50}
	if err := New().Restore(bytes.NewReader(snapshotBytes(t, e))); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("Restore of a state over its own max_keys: %v, want ErrBadSnapshot", err)
	}
}

func TestMeasure_MatchesRestore(t *testing.T) {
	e, _ := populated(t, 3)
	mustApply(t, e, limitOp(drivers.Limits{MaxBytes: 1 << 30, Policy: drivers.PolicyRandom}))
	got, err := New().Measure(bytes.NewReader(snapshotBytes(t, e)))
	if err != nil {
		t.Fatal(err)
	}
	want := e.Stats()
	if got.Keys != want.Keys || got.Bytes != want.Bytes || got.Usage != want.Usage || got.Limits != want.Limits {
		t.Fatalf("Measure = %+v, engine %+v", got, want)
	}
	data := snapshotBytes(t, e)
	data[len(data)-1] ^= 1
	if _, err := New().Measure(bytes.NewReader(data)); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("Measure of a damaged stream: %v", err)
	}
}

// TestLimits_TightCompaction checks that a bounded engine keeps dead
// records to about a quarter of its slabs under a churn of overwrites and
// evictions, where an unbounded one allows half.
func TestLimits_TightCompaction(t *testing.T) {
	for _, bounded := range []bool{false, true} {
		e := newEngine(4096)
		if bounded {
			mustApply(t, e, limitOp(drivers.Limits{MaxBytes: 1 << 20, Policy: drivers.PolicyRandom}))
		}
		r := rand.New(rand.NewPCG(7, 7))
		worst := 0.0
		for i := range 20000 {
			k := "k" + strconv.Itoa(r.IntN(2000))
			mustApply(t, e, setOp(t0, it(k, strings.Repeat("v", 50+r.IntN(100)), "", 0)))
			if i > 5000 {
				st := &e.st
				worst = max(worst, float64(st.garbage()-2*st.slabSize)/float64(st.size))
			}
		}
		checkInvariants(t, e)
		limit := 0.5
		if bounded {
			limit = 0.25
		}
		if worst > limit {
			t.Errorf("bounded %v: dead records reached %.0f%% of the slabs, want at most %.0f%%", bounded, worst*100, limit*100)
		}
	}
}
