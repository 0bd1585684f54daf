package log

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkStores_StoreLogs measures what one raft log append costs on this
// machine's disk, the step a replicated write waits for twice in series (the
// leader's append, then a follower's): one entry of a one-key write per
// StoreLogs, as at one client. writers=3 appends to three stores at once, as
// three nodes sharing one disk do. It reports the median and 99th percentile
// of one append beside ns/op; docs/benchmarks.md sets them against a
// replicated write's latency.
//
//	go test -run '^$' -bench StoreLogs -benchtime 2000x ./log/
func BenchmarkStores_StoreLogs(b *testing.B) {
	for _, store := range []string{"boltdb", "wal"} {
		for _, writers := range []int{1, 3} {
			b.Run(fmt.Sprintf("store=%s/writers=%d", store, writers), func(b *testing.B) {
				benchStoreLogs(b, store, writers)
			})
		}
	}
}

func benchStoreLogs(b *testing.B, store string, writers int) {
	var opts []StoreOption
	if store == "wal" {
		opts = append(opts, WithWAL())
	}
	logs := make([]raft.LogStore, writers)
	for i := range logs {
		st, err := OpenStores(b.TempDir(), nil, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() })
		logs[i] = st.Log
	}
	data := make([]byte, 200) // an encoded one-key Set of 100 bytes, roughly
	took := make([][]time.Duration, writers)
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range writers {
		wg.Go(func() {
			took[w] = make([]time.Duration, 0, b.N)
			for i := range b.N {
				l := &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: data}
				start := time.Now()
				if err := logs[w].StoreLogs([]*raft.Log{l}); err != nil {
					b.Error(err)
					return
				}
				took[w] = append(took[w], time.Since(start))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	all := slices.Concat(took...)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	ms := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}
