package cluster_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metrics "github.com/hashicorp/go-metrics/compat"

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
				s := c.Store(node, "mem", cluster.ReadLocal)
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
	if err := c.Store(leader, "mem", cluster.ReadLocal).Set(context.Background(), []drivers.Item{{Key: "k", Value: []byte("v")}}); err != nil {
		b.Fatal(err)
	}
	s := c.Store(c.Followers(leader)[0], "mem", cluster.ReadLinearizable)
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

// BenchmarkCluster_WriteBreakdown times one write at a time through the
// leader and through a follower, with raft's own timers (go-metrics, an
// in-memory sink for the benchmark only) reported per write: the leader's
// log write, a follower's log write, the leader's replication round trip
// to a follower (its log write included), dispatch to commit, and the FSM
// apply. docs/benchmarks.md puts them next to the fsync and loopback floor.
// BENCH_LOG_STORE=wal times the raft-wal log store; BENCH_CALLERS=64
// writes with that many callers at once (the times are then per entry, an
// entry carrying many writes).
func BenchmarkCluster_WriteBreakdown(b *testing.B) {
	sink := metrics.NewInmemSink(time.Hour, time.Hour)
	conf := metrics.DefaultConfig("kvnode")
	conf.EnableHostname, conf.EnableRuntimeMetrics = false, false
	if _, err := metrics.NewGlobal(conf, sink); err != nil {
		b.Fatal(err)
	}
	defer metrics.Shutdown()
	for _, via := range []string{"leader", "follower"} {
		b.Run("via="+via, func(b *testing.B) {
			c := clustertest.New(b, clustertest.Options{Storages: map[string]string{"mem": "memory"}, Tune: func(cfg *cluster.Config) {
				cfg.Raft.LogStore = os.Getenv("BENCH_LOG_STORE")
			}})
			node := c.WaitLeader()
			if via == "follower" {
				node = c.Followers(node)[0]
			}
			s := c.Store(node, "mem", cluster.ReadLocal)
			val := make([]byte, 100)
			callers, _ := strconv.Atoi(os.Getenv("BENCH_CALLERS"))
			before := samples(sink)
			first := c.Nodes[node].Node.FSM().AppliedIndex()
			b.ResetTimer()
			if callers > 1 {
				b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
				var n atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := s.Set(context.Background(), []drivers.Item{{Key: fmt.Sprint("k", n.Add(1)%10000), Value: val}}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			for i := 0; callers <= 1 && i < b.N; i++ {
				if err := s.Set(context.Background(), []drivers.Item{{Key: fmt.Sprint("k", i%10000), Value: val}}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if entries := c.Nodes[node].Node.FSM().AppliedIndex() - first; entries > 0 {
				b.ReportMetric(float64(b.N)/float64(entries), "writes/entry")
			}
			after := samples(sink)
			for _, m := range []struct{ name, key string }{
				{"leader-log-ms", "raft.leader.dispatchLog"},
				{"follower-log-ms", "raft.rpc.appendEntries.storeLogs"},
				{"replicate-rtt-ms", "raft.replication.appendEntries.rpc"},
				{"commit-ms", "raft.commitTime"},
				{"fsm-apply-ms", "raft.fsm.applyBatch"},
			} {
				sum, n := after[m.key].sum-before[m.key].sum, after[m.key].n-before[m.key].n
				if n > 0 {
					b.ReportMetric(sum/float64(n), m.name)
				}
			}
		})
	}
}

type timing struct {
	sum float64 // ms
	n   int
}

// samples sums raft's timers by key (peer labels folded into one).
func samples(sink *metrics.InmemSink) map[string]timing {
	out := map[string]timing{}
	for _, iv := range sink.Data() {
		iv.RLock()
		for key, s := range iv.Samples {
			for _, k := range []string{"raft.leader.dispatchLog", "raft.rpc.appendEntries.storeLogs",
				"raft.replication.appendEntries.rpc", "raft.commitTime", "raft.fsm.applyBatch"} {
				// Exactly k, or k with a peer (".peer" or ";labels"):
				// not applyBatchNum for applyBatch.
				name := strings.TrimPrefix(key, "kvnode.")
				if name == k || strings.HasPrefix(name, k+".") || strings.HasPrefix(name, k+";") {
					t := out[k]
					t.sum += s.Sum
					t.n += s.Count
					out[k] = t
				}
			}
		}
		iv.RUnlock()
	}
	return out
}
