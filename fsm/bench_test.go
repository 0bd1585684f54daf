package fsm

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memory"
)

// BenchmarkFSM_ApplyBatch applies batches of 64 one-key Sets (100-byte
// values), the shape raft hands over under concurrent load.
func BenchmarkFSM_ApplyBatch(b *testing.B) {
	for _, driver := range []string{"memory", "boltdb"} {
		b.Run(driver, func(b *testing.B) {
			var eng drivers.Engine = memory.New()
			if driver == "boltdb" {
				var err error
				if eng, err = boltdb.Open(boltdb.Config{File: filepath.Join(b.TempDir(), "b.db")}, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.Cleanup(func() { _ = eng.Close() })
			f := New(map[string]drivers.Engine{"s": eng}, nil)
			const batch = 64
			val := make([]byte, 100)
			data := make([][]byte, batch)
			for i := range data {
				data[i] = encode(b, "s", drivers.Op{Kind: drivers.OpSet, Now: base,
					Items: []drivers.Item{{Key: fmt.Sprintf("key-%d", i), Value: val}}})
			}
			var index uint64
			b.ReportAllocs()
			for b.Loop() {
				logs := make([]*raft.Log, batch)
				for i := range logs {
					index++
					logs[i] = cmd(index, data[i])
				}
				f.ApplyBatch(logs)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/entry")
		})
	}
}
