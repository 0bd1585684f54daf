package ops

import (
	"testing"
	"time"
)

// BenchmarkMetrics_ObserveCall is the cost metrics add to every RPC call.
func BenchmarkMetrics_ObserveCall(b *testing.B) {
	m := NewMetrics(Options{Storages: []string{"default"}})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveCall("kv.MGet", "default", 20*time.Microsecond, nil)
		}
	})
}

// BenchmarkMetrics_ObserveCallSerial is the same on one goroutine, without
// cache-line contention between cores.
func BenchmarkMetrics_ObserveCallSerial(b *testing.B) {
	m := NewMetrics(Options{Storages: []string{"default"}})
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveCall("kv.MGet", "default", 20*time.Microsecond, nil)
	}
}
