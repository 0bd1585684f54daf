package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
)

// BenchmarkCluster_SetForwardedTLS measures what mutual TLS on the cluster
// port costs a write forwarded by a follower (replication to the other
// follower runs over TLS too), against plain TCP.
func BenchmarkCluster_SetForwardedTLS(b *testing.B) {
	certs := cluster.WriteTestCerts(b, b.TempDir())
	for _, tls := range []bool{false, true} {
		for _, par := range []int{1, 16} {
			b.Run(fmt.Sprintf("tls=%v/callers=%d", tls, par*2), func(b *testing.B) {
				c := clustertest.New(b, clustertest.Options{Storages: map[string]string{"mem": "memory"}, Tune: func(cfg *cluster.Config) {
					if tls {
						cfg.TLS = certs.Good
					}
				}})
				s := c.Store(c.Followers(c.WaitLeader())[0], "mem", cluster.ReadLocal)
				val := make([]byte, 100)
				var n atomic.Int64
				b.SetParallelism(par)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						k := fmt.Sprint("k", n.Add(1)%10000)
						err := s.Set(context.Background(), []drivers.Item{{Key: k, Value: val}})
						// A loaded machine may move leadership mid-run; that
						// costs time, which the figure then shows.
						if err != nil && !errors.Is(err, cluster.ErrNoLeader) && !errors.Is(err, cluster.ErrOutcomeUnknown) {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
