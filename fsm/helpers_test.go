package fsm

import (
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memory"
	eventlog "github.com/kvnode/kvnode/log"
)

// base is the proposer clock the test logs start at (Unix ns).
const base int64 = 1_700_000_000_000_000_000

const sec = int64(1_000_000_000)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func encode(t testing.TB, storage string, op drivers.Op) []byte {
	t.Helper()
	b, err := eventlog.Encode(eventlog.Event{Storage: storage, Op: op})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cmd(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

func newMemory(t *testing.T) *memory.Engine {
	e := memory.New()
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func openBolt(t *testing.T, path string) *boltdb.Engine {
	t.Helper()
	e, err := boltdb.Open(boltdb.Config{File: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// newPair returns an FSM over a fresh memory engine "mem" and a fresh boltdb
// engine "bolt".
func newPair(t *testing.T) *FSM {
	return New(map[string]drivers.Engine{
		"mem":  newMemory(t),
		"bolt": openBolt(t, filepath.Join(t.TempDir(), "bolt.db")),
	}, testLogger(t), WithSpoolDir(t.TempDir()))
}

func stateHash(t *testing.T, f *FSM) []byte {
	t.Helper()
	h, err := f.StateHash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// results applies logs as one batch and returns the Results, checking that
// commands get a *Result and other entries nil.
func results(t *testing.T, f *FSM, logs []*raft.Log) []*Result {
	t.Helper()
	out := f.ApplyBatch(logs)
	if len(out) != len(logs) {
		t.Fatalf("%d responses for %d logs", len(out), len(logs))
	}
	rs := make([]*Result, len(out))
	for i, r := range out {
		if logs[i].Type != raft.LogCommand {
			if r != nil {
				t.Fatalf("log %d (%v): response %v, want nil", logs[i].Index, logs[i].Type, r)
			}
			continue
		}
		res, ok := r.(*Result)
		if !ok {
			t.Fatalf("log %d: response %T, want *Result", logs[i].Index, r)
		}
		if res.Index != logs[i].Index {
			t.Fatalf("log %d: Result.Index %d", logs[i].Index, res.Index)
		}
		rs[i] = res
	}
	return rs
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// mustPanic runs fn and returns the error it panicked with.
func mustPanic(t *testing.T, fn func()) (err error) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("did not panic")
		}
		var ok bool
		if err, ok = r.(error); !ok {
			t.Fatalf("panicked with %T %v, want an error", r, r)
		}
	}()
	fn()
	return nil
}

// counting wraps a real engine to observe how the FSM drives it: the
// batches it applies and the snapshots it releases.
type counting struct {
	drivers.Engine
	applies  []applyCall
	released atomic.Int32
	snaps    atomic.Int32
}

type applyCall struct {
	index uint64
	ops   int
}

func (c *counting) Apply(index uint64, ops []drivers.Op) ([]error, error) {
	c.applies = append(c.applies, applyCall{index, len(ops)})
	return c.Engine.Apply(index, ops)
}

func (c *counting) Snapshot() (drivers.Snapshot, error) {
	s, err := c.Engine.Snapshot()
	if err != nil {
		return nil, err
	}
	c.snaps.Add(1)
	return &countingSnap{Snapshot: s, c: c}, nil
}

type countingSnap struct {
	drivers.Snapshot
	c *counting
}

func (s *countingSnap) Release() {
	s.c.released.Add(1)
	s.Snapshot.Release()
}
