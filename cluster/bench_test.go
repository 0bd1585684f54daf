package cluster_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
)

// BenchmarkCluster_Set measures replicated writes of one key through the
// leader and through a follower (forwarded), with b.SetParallelism callers.
func BenchmarkCluster_Set(b *testing.B) {
	for _, via := range []string{"leader", "follower"} {
		for _, par := range []int{0, 1, 32} {
			b.Run(fmt.Sprintf("via=%s/callers=%d", via, max(1, par*2)), func(b *testing.B) {
				c := clustertest.New(b, clustertest.Options{Storages: map[string]string{"mem": "memory"}, Tune: func(cfg *cluster.Config) {
					if ct := os.Getenv("BENCH_COMMIT_TIMEOUT"); ct != "" {
						cfg.Raft.CommitTimeout, _ = time.ParseDuration(ct)
					}
					cfg.Raft.NoSync = os.Getenv("BENCH_NO_SYNC") != ""
					cfg.Raft.LogStore = os.Getenv("BENCH_LOG_STORE")
				}})
				node := c.WaitLeader()
				if via == "follower" {
					node = c.Followers(node)[0]
				}
				s := c.Store(node, "mem", cluster.Local)
				var n atomic.Int64
				val := make([]byte, 100)
				b.ResetTimer()
				if par == 0 {
					for i := range b.N {
						if err := s.Set(context.Background(), []drivers.Item{{Key: fmt.Sprint("k", i%10000), Value: val}}); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.SetParallelism(par)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						k := fmt.Sprint("k", n.Add(1)%10000)
						if err := s.Set(context.Background(), []drivers.Item{{Key: k, Value: val}}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkCluster_LinearizableMGet measures ReadIndex reads on a follower.
func BenchmarkCluster_LinearizableMGet(b *testing.B) {
	c := clustertest.New(b, clustertest.Options{Storages: map[string]string{"mem": "memory"}})
	leader := c.WaitLeader()
	if err := c.Store(leader, "mem", cluster.Local).Set(context.Background(), []drivers.Item{{Key: "k", Value: []byte("v")}}); err != nil {
		b.Fatal(err)
	}
	s := c.Store(c.Followers(leader)[0], "mem", cluster.Linearizable)
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.MGet(context.Background(), []string{"k"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
