package memory

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/drivers"
)

const benchKeys = 1 << 16

func benchKey(i int) string { return fmt.Sprintf("key:%012d", i) } // 16 bytes

func loaded(b testing.TB, n int, ttl bool) *Engine {
	b.Helper()
	e := New()
	items := make([]drivers.Item, 0, 1024)
	flush := func() {
		mustApply(b, e, setOp(t0, items...))
		items = items[:0]
	}
	for i := range n {
		item := drivers.Item{Key: benchKey(i), Value: make([]byte, 100)}
		if ttl {
			// Like the RPC layer: every item's timeout is its own string, and
			// a client setting many keys in the same second sends the same
			// text (the PHP client formats now+ttl to whole seconds).
			sec := i / 1000
			item.Timeout = "2030-01-01T00:" + strconv.Itoa(sec/60%60 + 100)[1:] + ":" + strconv.Itoa(sec%60 + 100)[1:] + "Z"
			item.Deadline = t0 + int64(1e9) + int64(sec)*1e9
		}
		items = append(items, item)
		if len(items) == cap(items) {
			flush()
		}
	}
	flush()
	return e
}

func BenchmarkSet1(b *testing.B) {
	e := loaded(b, benchKeys, false)
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	val := make([]byte, 100)
	ops := []drivers.Op{setOp(t0, drivers.Item{Value: val})}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ops[0].Items[0].Key = keys[i&(benchKeys-1)]
		if _, err := e.Apply(0, ops); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSet1Fresh is BenchmarkSet1 with a new value slice for every
// write, as the RPC layer hands over: what a Set costs including the
// value's allocation.
func BenchmarkSet1Fresh(b *testing.B) {
	e := loaded(b, benchKeys, false)
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	ops := []drivers.Op{setOp(t0, drivers.Item{})}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ops[0].Items[0].Key = keys[i&(benchKeys-1)]
		ops[0].Items[0].Value = make([]byte, 100)
		if _, err := e.Apply(0, ops); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkSet1TTL(b *testing.B) {
	e := loaded(b, benchKeys, true)
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	val := make([]byte, 100)
	ops := []drivers.Op{setOp(t0, drivers.Item{Value: val, Timeout: ts})}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ops[0].Items[0].Key = keys[i&(benchKeys-1)]
		ops[0].Items[0].Deadline = t0 + 1e9 + int64(i%1000)
		if _, err := e.Apply(0, ops); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkMGet1(b *testing.B) {
	e := loaded(b, benchKeys, false)
	keys := make([][]string, benchKeys)
	for i := range keys {
		keys[i] = []string{benchKey(i)}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if items, err := e.MGet(t0, keys[i&(benchKeys-1)]); err != nil || len(items) != 1 {
			b.Fatal(items, err)
		}
		i++
	}
}

func BenchmarkMGet16(b *testing.B) {
	e := loaded(b, benchKeys, false)
	sets := make([][]string, benchKeys/16)
	for i := range sets {
		for j := range 16 {
			sets[i] = append(sets[i], benchKey(i*16+j))
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if items, err := e.MGet(t0, sets[i%len(sets)]); err != nil || len(items) != 16 {
			b.Fatal(items, err)
		}
		i++
	}
}

// BenchmarkParallel mixes reads and writes from GOMAXPROCS goroutines; the
// sub-benchmark name gives the share of writes.
func BenchmarkParallel(b *testing.B) {
	for _, writePct := range []int{0, 10, 50} {
		b.Run("writes="+strconv.Itoa(writePct)+"%", func(b *testing.B) {
			e := loaded(b, benchKeys, false)
			keys := make([]string, benchKeys)
			for i := range keys {
				keys[i] = benchKey(i)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				val := make([]byte, 100)
				ops := []drivers.Op{setOp(t0, drivers.Item{Value: val})}
				get := []string{""}
				i := 0
				for pb.Next() {
					k := keys[(i*7919)&(benchKeys-1)]
					if i%100 < writePct {
						ops[0].Items[0].Key = k
						if _, err := e.Apply(0, ops); err != nil {
							b.Error(err)
							return
						}
					} else {
						get[0] = k
						if _, err := e.MGet(t0, get); err != nil {
							b.Error(err)
							return
						}
					}
					i++
				}
			})
		})
	}
}

func BenchmarkExpired1024(b *testing.B) {
	e := loaded(b, 1<<18, true)
	b.ReportAllocs()
	for b.Loop() {
		if items, err := e.Expired(t0+2e9, 1024); err != nil || len(items) != 1024 {
			b.Fatal(len(items), err)
		}
	}
}

// BenchmarkSnapshot measures Snapshot alone: the time Apply is blocked.
func BenchmarkSnapshot(b *testing.B) {
	e := loaded(b, 1<<18, false)
	b.ReportAllocs()
	for b.Loop() {
		s, err := e.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		s.Release()
	}
}

// BenchmarkFootprint1M loads 1M keys of 16 bytes with 100-byte values (the
// shape RoadRunner's ~600 B/key and redis's ~235 B/key were measured with)
// and reports the heap in use and the resident set growth per key. Run it
// with -benchtime=1x.
func BenchmarkFootprint1M(b *testing.B) {
	for _, ttl := range []bool{false, true} {
		b.Run("ttl="+strconv.FormatBool(ttl), func(b *testing.B) {
			const n = 1_000_000
			for b.Loop() {
				b.StopTimer()
				debug.FreeOSMemory()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				rssBefore := rss()
				b.StartTimer()
				e := loaded(b, n, ttl)
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&after)
				rssAfter := rss()
				b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "heap-B/key")
				if rssBefore > 0 && rssAfter > 0 {
					b.ReportMetric(float64(rssAfter-rssBefore)/n, "rss-B/key")
				}
				if s := e.Stats(); s.Keys != n {
					b.Fatalf("Stats = %+v", s)
				}
				runtime.KeepAlive(e)
				b.StartTimer()
			}
		})
	}
}

// rss returns the process's resident set in bytes, or 0 where /proc is not
// available.
func rss() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// BenchmarkWriteToRestore measures streaming a snapshot of 256k keys out and
// building an engine back from it.
func BenchmarkWriteToRestore(b *testing.B) {
	e := loaded(b, 1<<18, true)
	data := snapshotBytes(b, e)
	b.Run("write", func(b *testing.B) {
		for b.Loop() {
			data = snapshotBytes(b, e)
		}
		b.SetBytes(int64(len(data)))
	})
	b.Run("restore", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := New().Restore(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
