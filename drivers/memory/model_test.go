package memory

import (
	"iter"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/kvnode/kvnode/drivers"
)

// checkInvariants verifies the heap order, the heap/map cross references,
// the slab accounting and the counters against a full scan.
func checkInvariants(t testing.TB, e *Engine) {
	t.Helper()
	e.mu.RLock()
	defer e.mu.RUnlock()
	var bytes int64
	withTTL, ttlRecords := 0, 0
	live := make(map[int]int)
	for i := range e.tab.shards {
		sh := &e.tab.shards[i]
		used := 0
		for j, x := range sh.slots {
			if x == 0 {
				continue
			}
			used++
			l := slotLoc(x)
			k, _ := e.st.at(l)
			p, ok := e.tab.find(e.st.slabs, k)
			if !ok || p.s != sh || p.i != j || p.l != l || e.tab.hash(k)>>hashShift&(1<<hashBits-1) != slotHash(x) {
				t.Fatalf("key %q: lookup gives %+v, %v; stored in shard %d slot %d as %x", k, p, ok, i, j, x)
			}
			_, _, size := record(e.st.slabs[l.id()], l.off())
			live[l.id()] += size
		}
		if used != sh.n || used*maxLoadDen > len(sh.slots)*maxLoadNum {
			t.Fatalf("shard %d: %d slots used of %d, n = %d", i, used, len(sh.slots), sh.n)
		}
		if sh.exps != nil && len(sh.exps) != len(sh.slots) {
			t.Fatalf("shard %d: %d expiry records for %d slots", i, len(sh.exps), len(sh.slots))
		}
		if sh.stamps != nil && len(sh.stamps) != len(sh.slots) {
			t.Fatalf("shard %d: %d stamps for %d slots", i, len(sh.stamps), len(sh.slots))
		}
		for j, x := range sh.exps {
			if x != nil {
				if sh.slots[j] == 0 {
					t.Fatalf("shard %d: expiry record of %q in an empty slot", i, x.key())
				}
				ttlRecords++
			}
		}
	}
	total := 0
	for id, b := range e.st.slabs {
		if b == nil {
			continue
		}
		m := e.st.meta[id]
		if m.live != live[id] || m.fill > len(b) {
			t.Fatalf("slab %d: %+v, len %d; records say %d live bytes", id, m, len(b), live[id])
		}
		if m.live == 0 && id != e.st.cur && id != e.st.victim {
			t.Fatalf("slab %d holds nothing live but was kept", id)
		}
		total += m.live
		delete(live, id)
	}
	if len(live) != 0 || total != e.st.live {
		t.Fatalf("records in dropped slabs %v, or live %d != %d", live, total, e.st.live)
	}
	for k, en := range allEntries(e) {
		bytes += int64(len(k) + len(en.val))
		if en.exp == nil {
			continue
		}
		withTTL++
		if en.exp.key() != k || en.exp.deadline == 0 {
			t.Fatalf("expiry of %q = %+v", k, en.exp)
		}
		if int(en.exp.idx) >= len(e.heap) || e.heap[en.exp.idx] != en.exp {
			t.Fatalf("heap index of %q is stale", k)
		}
	}
	if withTTL != len(e.heap) || ttlRecords != withTTL {
		t.Fatalf("%d keys with TTL, heap holds %d, shards %d", withTTL, len(e.heap), ttlRecords)
	}
	for i := 1; i < len(e.heap); i++ {
		if less(e.heap[i], e.heap[(i-1)/2]) {
			t.Fatalf("heap order broken at %d", i)
		}
	}
	keys := int64(count(&e.tab.shards))
	if s := e.Stats(); s.Keys != keys || s.Bytes != bytes || s.Usage != drivers.Usage(keys, bytes, int64(withTTL)) {
		t.Fatalf("Stats = %+v, scan says {%d %d usage %d}", s, keys, bytes, drivers.Usage(keys, bytes, int64(withTTL)))
	}
	if l := e.limits; l.Over(keys, e.usage()) {
		t.Fatalf("%d keys, usage %d: over %s", keys, e.usage(), l)
	}
}

// allEntries iterates over every key of e; callers hold e.mu.
func allEntries(e *Engine) iter.Seq2[string, entry] {
	return func(yield func(string, entry) bool) {
		for i := range e.tab.shards {
			for _, x := range e.tab.shards[i].slots {
				if x == 0 {
					continue
				}
				k, _ := e.st.at(slotLoc(x))
				if en, _ := e.tab.get(e.st.slabs, k); !yield(k, en) {
					return
				}
			}
		}
	}
}

// model is the obvious reference implementation of the semantics.
type model map[string]drivers.Item

func (m model) apply(op drivers.Op) {
	switch op.Kind {
	case drivers.OpSet:
		for _, x := range op.Items {
			if drivers.Expired(x.Deadline, op.Now) {
				delete(m, x.Key)
			} else {
				m[x.Key] = x
			}
		}
	case drivers.OpMExpire:
		for _, x := range op.Items {
			cur, ok := m[x.Key]
			if !ok || drivers.Expired(cur.Deadline, op.Now) {
				continue
			}
			if drivers.Expired(x.Deadline, op.Now) {
				delete(m, x.Key)
				continue
			}
			if x.Deadline == 0 {
				x.Timeout = ""
			}
			cur.Timeout, cur.Deadline = x.Timeout, x.Deadline
			m[x.Key] = cur
		}
	case drivers.OpDelete:
		for _, k := range op.Keys {
			delete(m, k)
		}
	case drivers.OpClear:
		clear(m)
	case drivers.OpExpire:
		for _, x := range op.Items {
			if cur, ok := m[x.Key]; ok && cur.Deadline != 0 && cur.Deadline == x.Deadline {
				delete(m, x.Key)
			}
		}
	}
}

func (m model) expired(now int64, limit int) []string {
	var out []drivers.Item
	for _, x := range m {
		if drivers.Expired(x.Deadline, now) {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b drivers.Item) int {
		if a.Deadline != b.Deadline {
			return int(a.Deadline - b.Deadline)
		}
		return compareStrings(a.Key, b.Key)
	})
	keys := make([]string, 0, len(out))
	for _, x := range out[:min(limit, len(out))] {
		keys = append(keys, x.Key)
	}
	return keys
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// randomOps generates n ops over a small key space so that keys collide,
// TTLs get replaced and removed, and the sweeper races with re-sets.
func randomOps(r *rand.Rand, e *Engine, n int, now *int64) []drivers.Op {
	key := func() string { return "k" + strconv.Itoa(r.IntN(40)) }
	deadline := func() (string, int64) {
		switch r.IntN(4) {
		case 0:
			return "", 0
		case 1:
			return "past", *now - r.Int64N(3)
		default:
			d := *now + 1 + r.Int64N(50)
			return "t" + strconv.FormatInt(d, 10), d
		}
	}
	ops := make([]drivers.Op, 0, n)
	for range n {
		*now += r.Int64N(5)
		op := drivers.Op{Now: *now}
		switch c := r.IntN(20); {
		case c < 9:
			op.Kind = drivers.OpSet
			for range 1 + r.IntN(3) {
				to, d := deadline()
				op.Items = append(op.Items, drivers.Item{Key: key(), Value: []byte(strconv.Itoa(r.IntN(1000))), Timeout: to, Deadline: d})
			}
		case c < 13:
			op.Kind = drivers.OpMExpire
			for range 1 + r.IntN(3) {
				to, d := deadline()
				op.Items = append(op.Items, drivers.Item{Key: key(), Timeout: to, Deadline: d})
			}
		case c < 15:
			op.Kind = drivers.OpDelete
			op.Keys = []string{key(), key()}
		case c < 16 && r.IntN(5) == 0:
			op.Kind = drivers.OpClear
		default:
			op.Kind = drivers.OpExpire
			if e != nil {
				op.Items, _ = e.Expired(*now, 1+r.IntN(4))
			}
			op.Items = append(op.Items, drivers.Item{Key: key(), Deadline: *now - r.Int64N(10)})
		}
		ops = append(ops, op)
	}
	return ops
}

// modelConfigs are the engine layouts the model tests run against: the
// default, slabs small enough to make compaction run every few ops, and
// hashes masked to 2 bits (the top ones of a slot's hash bits, so the keys
// start probing at 4 places of one shard's table, and wrap around).
var modelConfigs = []struct {
	name     string
	slabSize int
	mask     uint64
}{
	{"default", defaultSlabSize, ^uint64(0)},
	{"tiny-slabs", 64, ^uint64(0)},
	{"colliding", 64, 3 << (hashShift + hashBits - 2)},
}

func modelEngine(slabSize int, mask uint64) *Engine {
	e := newEngine(slabSize)
	e.tab.mask = mask
	return e
}

func TestEngine_MatchesModel(t *testing.T) {
	for _, c := range modelConfigs {
		t.Run(c.name, func(t *testing.T) { testMatchesModel(t, c.slabSize, c.mask) })
	}
}

func testMatchesModel(t *testing.T, slabSize int, mask uint64) {
	compacted := 0
	defer func() {
		if slabSize < 1024 && compacted == 0 {
			t.Error("compaction never ran")
		}
	}()
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		e, m := modelEngine(slabSize, mask), model{}
		now := t0
		keys := make([]string, 40)
		for i := range keys {
			keys[i] = "k" + strconv.Itoa(i)
		}
		for step := range 300 {
			for _, op := range randomOps(r, e, 1, &now) {
				mustApply(t, e, op)
				m.apply(op)
			}
			checkInvariants(t, e)
			compacted += e.st.compacted
			var want []drivers.Item
			for _, x := range m {
				if !drivers.Expired(x.Deadline, now) {
					want = append(want, x)
				}
			}
			wantState(t, read(t, e, now, keys...), want...)
			got, _ := e.Expired(now, 5)
			wantKeys := m.expired(now, 5)
			if len(got) != len(wantKeys) {
				t.Fatalf("seed %d step %d: Expired = %v, want %v", seed, step, got, wantKeys)
			}
			for i := range got {
				if got[i].Key != wantKeys[i] || got[i].Deadline != m[wantKeys[i]].Deadline {
					t.Fatalf("seed %d step %d: Expired = %v, want %v", seed, step, got, wantKeys)
				}
			}
		}
	}
}
