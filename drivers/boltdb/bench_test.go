package boltdb

import (
	"fmt"
	"testing"

	"github.com/kvnode/kvnode/drivers"
)

// BenchmarkApply measures how group commit amortises the fsync: one Apply
// of n single-key Set ops is one transaction and one fsync.
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			e := openEngine(b, Config{File: b.TempDir() + "/rr.db"})
			value := make([]byte, 128)
			ops := make([]drivers.Op, n)
			index := uint64(0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				for j := range ops {
					ops[j] = setOp(sec, drivers.Item{Key: fmt.Sprintf("key-%d-%d", i%1000, j), Value: value})
				}
				index++
				if _, err := e.Apply(index, ops); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/write")
		})
	}
}

func BenchmarkMGet(b *testing.B) {
	e := openEngine(b, Config{File: b.TempDir() + "/rr.db"})
	const keys = 10000
	items := make([]drivers.Item, 0, keys)
	for i := range keys {
		items = append(items, drivers.Item{Key: fmt.Sprintf("key-%05d", i), Value: make([]byte, 128), Timeout: "t", Deadline: int64(i%2) * 1000 * sec})
	}
	if _, err := e.Apply(1, []drivers.Op{setOp(sec, items...)}); err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			ask := make([]string, n)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				for j := range ask {
					ask[j] = items[(i*n+j*7919)%keys].Key
				}
				got, err := e.MGet(sec, ask)
				if err != nil || len(got) != n {
					b.Fatalf("MGet = %d items, %v", len(got), err)
				}
			}
		})
	}
}
