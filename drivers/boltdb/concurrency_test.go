package boltdb

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kvnode/kvnode/drivers"
)

// TestBatchFailsWhole damages a TTL record behind the engine's back so that
// an op fails half-way through a batch; nothing of the batch may land.
func TestBatchFailsWhole(t *testing.T) {
	cfg := testConfig(t)
	e, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, e, 4, setOp(sec, item("bad", "v", 100*sec), item("x", "old", 0)))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(cfg.File, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(ttlBucket)).Put([]byte("bad"), []byte{1, 2}) })
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	e = openEngine(t, cfg)
	errs, err := e.Apply(5, []drivers.Op{
		setOp(sec, item("x", "new", 0), item("y", "new", 0)),
		{Kind: drivers.OpMExpire, Now: sec, Items: []drivers.Item{{Key: "y", Deadline: 50 * sec}, {Key: "bad", Deadline: 50 * sec}}},
	})
	if err == nil {
		t.Fatalf("Apply succeeded (errs %v) over a damaged record", errs)
	}
	if e.AppliedIndex() != 4 {
		t.Fatalf("AppliedIndex = %d after a failed batch", e.AppliedIndex())
	}
	if got := values(t, e, sec, "x", "y"); len(got) != 1 || got["x"] != "old" {
		t.Fatalf("MGet = %v: part of the failed batch landed", got)
	}
	if s := e.Stats(); s.Keys != 2 {
		t.Fatalf("Stats = %+v", s)
	}
}

// TestConcurrentReadersSeeWholeWrites runs writers, readers, snapshots and a
// restore at once (under -race); a reader must never see half of a write.
func TestConcurrentReadersSeeWholeWrites(t *testing.T) {
	e := newEngine(t)
	mustApply(t, e, 1, setOp(sec, item("a", "0", 0), item("b", "0", 0)))
	restoreFrom := snapshotBytes(t, e)

	const writes = 100
	var writers, readers sync.WaitGroup
	var done atomic.Bool
	errc := make(chan error, 16)
	report := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}

	for w := range 2 {
		writers.Go(func() {
			for i := range writes {
				if done.Load() {
					return
				}
				v := strconv.Itoa(w*writes + i)
				_, err := e.Apply(uint64(2+i), []drivers.Op{setOp(sec,
					drivers.Item{Key: "a", Value: []byte(v), Timeout: "t", Deadline: 1000 * sec},
					drivers.Item{Key: "b", Value: []byte(v)})})
				if err != nil {
					report(err)
					return
				}
				if i == writes/2 && w == 0 {
					if err := e.Restore(bytes.NewReader(restoreFrom)); err != nil {
						report(fmt.Errorf("restore: %w", err))
						return
					}
				}
			}
		})
	}
	for range 3 {
		readers.Go(func() {
			for !done.Load() {
				got, err := e.MGet(sec, []string{"a", "b"})
				if err != nil {
					report(err)
					return
				}
				if len(got) != 2 || !bytes.Equal(got[0].Value, got[1].Value) {
					report(fmt.Errorf("torn read: %+v", got))
					return
				}
				if _, err := e.TTL(sec, []string{"a", "b"}); err != nil {
					report(err)
					return
				}
				if _, err := e.Hash(); err != nil {
					report(err)
					return
				}
				_ = e.Stats()
				_ = e.AppliedIndex()
			}
		})
	}
	readers.Go(func() {
		for !done.Load() {
			s, err := e.Snapshot()
			if err != nil {
				report(err)
				return
			}
			_, err = s.WriteTo(io.Discard)
			s.Release()
			if err != nil {
				report(err)
				return
			}
		}
	})

	writers.Wait()
	done.Store(true)
	readers.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	got := values(t, e, sec, "a", "b")
	if got["a"] != got["b"] {
		t.Fatalf("final state torn: %v", got)
	}
}
