package drivers_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
)

// BenchmarkStandaloneSet measures single-key Sets of new keys through Standalone,
// unbounded and full under each evicting policy, where every write evicts.
func BenchmarkStandaloneSet(b *testing.B) {
	for _, c := range []struct {
		name string
		lim  drivers.Limits
	}{
		{"unbounded", drivers.Limits{}},
		{"lru", drivers.Limits{MaxBytes: 16 << 20, Policy: drivers.PolicyLRU}},
		{"random", drivers.Limits{MaxBytes: 16 << 20, Policy: drivers.PolicyRandom}},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := drivers.NewStandalone(memory.New(), drivers.StandaloneOptions{Driver: "memory", SweepInterval: -1})
			defer func() {
				if err := l.Close(); err != nil {
					b.Error(err)
				}
			}()
			ctx := context.Background()
			if c.lim.Bounded() {
				if err := l.SetLimits(ctx, c.lim); err != nil {
					b.Fatal(err)
				}
			}
			val := make([]byte, 100)
			var next atomic.Int64
			fill := int(c.lim.MaxBytes/drivers.EntryUsage(16, 100, false)) + 1000
			for i := range fill {
				_ = l.Set(ctx, []drivers.Item{{Key: "fill:" + strconv.Itoa(i), Value: val}})
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := "key:" + strconv.FormatInt(next.Add(1), 10)
					if err := l.Set(ctx, []drivers.Item{{Key: k, Value: val}}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
