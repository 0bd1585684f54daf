package memory

import (
	"math/rand/v2"
	"testing"
)

// probe returns the slot holding x, looking where find would: from x's
// home to the first empty slot.
func probe(s *shard, x uint64) int {
	n := len(s.slots)
	if n == 0 {
		return -1
	}
	for i := home(slotHash(x), n); s.slots[i] != 0; {
		if s.slots[i] == x {
			return i
		}
		if i++; i == n {
			i = 0
		}
	}
	return -1
}

// TestShard_ProbingAndDeletion drives one shard's table with hash bits
// from a handful of values near the end of the range, so that clusters
// collide and wrap around the end of the table, and checks after every
// insert and delete that every entry is still reachable from its home and
// still has its expiry record.
func TestShard_ProbingAndDeletion(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	hbs := []uint64{0, 1, 1<<hashBits - 1, 1<<hashBits - 2, 1<<hashBits - 40, 1 << (hashBits - 1)}
	for round := range 20 {
		var s shard
		present := map[uint64]*expiry{}
		next := 0
		for step := range 400 {
			if len(present) > 0 && r.IntN(3) == 0 {
				for x := range present {
					p := pos{s: &s, hb: slotHash(x), i: probe(&s, x)}
					p.del()
					delete(present, x)
					break
				}
			} else {
				next++
				hb := hbs[r.IntN(len(hbs))]
				x := uint64(makeLoc(next, 0)) | hb<<slotShift
				p := pos{s: &s, hb: hb, i: -1}
				if len(s.slots) > 0 {
					// Where find would stop: the first empty slot from home.
					for p.i = home(hb, len(s.slots)); s.slots[p.i] != 0; {
						if p.i++; p.i == len(s.slots) {
							p.i = 0
						}
					}
				}
				var exp *expiry
				if r.IntN(2) == 0 {
					exp = &expiry{deadline: int64(next)}
				}
				p.insert(makeLoc(next, 0), exp)
				present[x] = exp
			}
			if s.n != len(present) {
				t.Fatalf("round %d step %d: n = %d, want %d", round, step, s.n, len(present))
			}
			for x, exp := range present {
				i := probe(&s, x)
				if i < 0 {
					t.Fatalf("round %d step %d: %x unreachable from its home in %x", round, step, x, s.slots)
				}
				if got := (&pos{s: &s, i: i}).entry().exp; got != exp {
					t.Fatalf("round %d step %d: %x has expiry %p, want %p", round, step, x, got, exp)
				}
			}
		}
	}
}
