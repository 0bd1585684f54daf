package memory

import (
	"bytes"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvnode/kvnode/drivers"
)

// TestEngine_ConcurrentAtomicity runs writers that always set a and b to the
// same value, and one that keeps overwriting c, against readers that must
// never see a and b differ, nor c missing.
func TestEngine_ConcurrentAtomicity(t *testing.T) {
	e := New()
	mustApply(t, e, setOp(t0, it("a", "init", "", 0), it("b", "init", "", 0), it("c", "init", "", 0)))
	const writers, readers, rounds = 3, 3, 1000
	var done atomic.Bool
	var wg sync.WaitGroup
	var writersWG sync.WaitGroup
	for w := range writers {
		writersWG.Go(func() {
			for i := range rounds {
				v := strconv.Itoa(w) + "-" + strconv.Itoa(i)
				var d int64
				to := ""
				if i%3 == 0 {
					to, d = ts, t0+int64(1e12) // with TTL, exercising the heap
				}
				ops := []drivers.Op{
					setOp(t0, it("a", v, to, d), it("b", v, to, d)),
					setOp(t0, it("c", v, "", 0)),
				}
				if errs, err := e.Apply(uint64(i), ops); err != nil || errs[0] != nil || errs[1] != nil {
					t.Errorf("Apply: %v %v", errs, err)
					return
				}
			}
		})
	}
	var reads atomic.Int64
	for range readers {
		wg.Go(func() {
			for !done.Load() {
				items, err := e.MGet(t0, []string{"a", "b"})
				if err != nil || len(items) != 2 {
					t.Errorf("MGet(a, b) = %v, %v: want both keys", items, err)
					return
				}
				if !bytes.Equal(items[0].Value, items[1].Value) {
					t.Errorf("torn multi-item write: a=%q b=%q", items[0].Value, items[1].Value)
					return
				}
				if has, _ := e.Has(t0, []string{"c"}); len(has) != 1 {
					t.Errorf("c missing while being overwritten")
					return
				}
				ttl, _ := e.TTL(t0, []string{"a", "b"})
				if len(ttl) != 2 {
					t.Errorf("TTL(a, b) = %v", ttl)
					return
				}
				reads.Add(1)
			}
		})
	}
	// Snapshots and hashes run against the writers: the race detector
	// checks that copy-on-write keeps them apart.
	wg.Go(func() {
		for i := 0; i < 100 && !done.Load(); i++ {
			s, err := e.Snapshot()
			if err != nil {
				t.Errorf("Snapshot: %v", err)
				return
			}
			if _, err := s.WriteTo(io.Discard); err != nil {
				t.Errorf("WriteTo: %v", err)
			}
			s.Release()
			if _, err := e.Hash(); err != nil {
				t.Errorf("Hash: %v", err)
			}
		}
	})
	writersWG.Wait()
	done.Store(true)
	wg.Wait()
	if reads.Load() == 0 {
		t.Fatal("readers never ran")
	}
	checkInvariants(t, e)
}
