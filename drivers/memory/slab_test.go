package memory

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvnode/kvnode/drivers"
)

// TestEngine_ValuesSurviveCompaction holds values returned by MGet while
// every key is overwritten and two thirds of them deleted, often enough to
// make compaction empty many slabs, and checks the held values never change.
func TestEngine_ValuesSurviveCompaction(t *testing.T) {
	e := newEngine(256)
	const n = 100
	val := func(k, round int) string {
		return strconv.Itoa(k) + "/" + strconv.Itoa(round) + strings.Repeat(".", k%7)
	}
	keys := make([]string, n)
	var ops []drivers.Op
	for i := range keys {
		keys[i] = "key" + strconv.Itoa(i)
		ops = append(ops, setOp(t0, it(keys[i], val(i, 0), "", 0)))
	}
	mustApply(t, e, ops...)
	held, err := e.MGet(t0, keys)
	if err != nil || len(held) != n {
		t.Fatalf("MGet = %d items, %v", len(held), err)
	}
	// Random order leaves every slab partly live, which is what compaction
	// is for (slabs whose records all die are dropped at once).
	r := rand.New(rand.NewPCG(5, 6))
	for round := 1; round <= 20; round++ {
		for _, i := range r.Perm(n) {
			mustApply(t, e, setOp(t0, it(keys[i], val(i, round), "", 0)))
		}
		checkInvariants(t, e)
	}
	for _, i := range r.Perm(n) {
		if i%3 != 0 {
			mustApply(t, e, deleteOp(t0, keys[i]))
		}
	}
	checkInvariants(t, e)
	if e.st.compacted == 0 {
		t.Fatal("compaction never ran")
	}
	for i, x := range held {
		if string(x.Value) != val(i, 0) {
			t.Fatalf("held value of %s changed to %q", keys[i], x.Value)
		}
	}
	var want []drivers.Item
	for i := 0; i < n; i += 3 {
		want = append(want, it(keys[i], val(i, 20), "", 0))
	}
	wantState(t, read(t, e, t0, keys...), want...)
	// Live records are at least half of the slabs, give or take the two
	// slabs compaction waits for and the one being filled.
	if e.st.size > 2*e.st.live+3*e.st.slabSize {
		t.Fatalf("slabs hold %d bytes for %d live", e.st.size, e.st.live)
	}
}

// TestEngine_LargeValues stores values bigger than a slab and bigger than
// the share that gets a slab of its own, overwrites and deletes them.
func TestEngine_LargeValues(t *testing.T) {
	e := newEngine(1024)
	big := strings.Repeat("b", 5000)
	mid := strings.Repeat("m", 300)
	mustApply(t, e, setOp(t0, it("big", big, ts, t0+100), it("mid", mid, "", 0), it("small", "s", "", 0)))
	wantState(t, read(t, e, t0, "big", "mid", "small"),
		it("big", big, ts, t0+100), it("mid", mid, "", 0), it("small", "s", "", 0))
	checkInvariants(t, e)
	mustApply(t, e, setOp(t0, it("big", mid, "", 0), it("mid", big, "", 0)), deleteOp(t0, "small"))
	wantState(t, read(t, e, t0, "big", "mid", "small"), it("big", mid, "", 0), it("mid", big, "", 0))
	checkInvariants(t, e)
	mustApply(t, e, deleteOp(t0, "big", "mid"))
	checkInvariants(t, e)
	if e.st.size > e.st.slabSize {
		t.Fatalf("%d bytes of slabs left for no key", e.st.size)
	}
}

// TestEngine_CallerMayReuseValue checks that Apply copies values: the
// caller's slice can be overwritten after Apply returns.
func TestEngine_CallerMayReuseValue(t *testing.T) {
	e := New()
	buf := []byte("first")
	mustApply(t, e, setOp(t0, drivers.Item{Key: "k", Value: buf}))
	copy(buf, "XXXXX")
	wantState(t, read(t, e, t0, "k"), it("k", "first", "", 0))
}

// TestEngine_ConcurrentCompaction runs readers against a writer that keeps
// compaction busy: every value read must be one the key was set to.
func TestEngine_ConcurrentCompaction(t *testing.T) {
	e := newEngine(512)
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for !done.Load() {
				items, err := e.MGet(t0, keys)
				if err != nil {
					t.Error(err)
					return
				}
				for _, x := range items {
					if !bytes.HasPrefix(x.Value, []byte(x.Key+"=")) {
						t.Errorf("%s = %q", x.Key, x.Value)
						return
					}
				}
			}
		})
	}
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		var items []drivers.Item
		for range 16 {
			k := keys[r.IntN(len(keys))]
			items = append(items, it(k, k+"="+strconv.Itoa(round), "", 0))
		}
		mustApply(t, e, setOp(t0, items...), deleteOp(t0, keys[r.IntN(len(keys))]))
	}
	done.Store(true)
	wg.Wait()
	checkInvariants(t, e)
	if e.st.compacted == 0 {
		t.Fatal("compaction never ran")
	}
}
