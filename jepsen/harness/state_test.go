package harness

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/fsm"
)

var threeNodes = []string{"node1", "node2", "node3"}

// digests answers fetch from a script: node -> one answer per poll (the
// last one repeats); a nil digest is an error.
func digests(script map[string][]*StateDigest) func(context.Context, string) (StateDigest, error) {
	polls := map[string]int{}
	return func(_ context.Context, n string) (StateDigest, error) {
		s := script[n]
		d := s[min(polls[n], len(s)-1)]
		polls[n]++
		if d == nil {
			return StateDigest{}, errors.New("connection refused")
		}
		return *d, nil
	}
}

func digest(index uint64, hash string) *StateDigest {
	return &StateDigest{Index: index, Hashes: map[string]string{"memory_lin": hash, "boltdb_lin": "b"}}
}

// A node whose status never answered used to count as agreement.
func TestMutationStateOfSilentNodeIsNoAgreement(t *testing.T) {
	fetch := digests(map[string][]*StateDigest{"node1": {digest(9, "a")}, "node2": {nil}, "node3": {digest(9, "a")}})
	err := CompareStates(t.Context(), threeNodes, fetch, 3, time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "node2 did not answer") {
		t.Fatalf("err = %v, want node2 reported", err)
	}
}

// Key and byte counts used to be all that was compared: equal counts hid
// different values.
func TestMutationSameIndexDifferentContent(t *testing.T) {
	fetch := digests(map[string][]*StateDigest{"node1": {digest(9, "aaaa")}, "node2": {digest(9, "aaaa")}, "node3": {digest(9, "bbbb")}})
	err := CompareStates(t.Context(), threeNodes, fetch, 3, time.Millisecond)
	if !errors.Is(err, errStatesDiffer) || !strings.Contains(err.Error(), "memory_lin at index 9") {
		t.Fatalf("err = %v, want a divergence of memory_lin", err)
	}
}

func TestCompareStatesRetriesUntilOneIndex(t *testing.T) {
	fetch := digests(map[string][]*StateDigest{
		"node1": {nil, digest(9, "a")},
		"node2": {digest(8, "x"), digest(9, "a")},
		"node3": {digest(9, "a")},
	})
	if err := CompareStates(t.Context(), threeNodes, fetch, 5, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	fetch = digests(map[string][]*StateDigest{"node1": {digest(8, "a")}, "node2": {digest(9, "a")}, "node3": {digest(9, "a")}})
	if err := CompareStates(t.Context(), threeNodes, fetch, 3, time.Millisecond); err == nil || !strings.Contains(err.Error(), "no common index") {
		t.Fatalf("err = %v, want no common index", err)
	}
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "test" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

// hashSnapshot hashes what an FSM holds, whatever engine wrote the stream:
// two FSMs with the same content give the same hashes, one different value
// changes its storage's hash only.
func TestHashSnapshotComparesContent(t *testing.T) {
	stream := func(value string) []byte {
		engines := map[string]drivers.Engine{"memory_lin": memory.New()}
		b, err := boltdb.Open(boltdb.Config{File: filepath.Join(t.TempDir(), "b.db")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		engines["boltdb_lin"] = b
		for _, e := range engines {
			ops := []drivers.Op{{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "k", Value: []byte(value)}, {Key: "fixed", Value: []byte("x")}}}}
			if _, err := e.Apply(7, ops); err != nil {
				t.Fatal(err)
			}
		}
		f := fsm.New(engines, nil)
		snap, err := f.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		defer snap.Release()
		var sink memSink
		if err := snap.Persist(&sink); err != nil {
			t.Fatal(err)
		}
		return sink.Bytes()
	}
	a, err := hashSnapshot(stream("v1"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	same, _ := hashSnapshot(stream("v1"), t.TempDir())
	other, _ := hashSnapshot(stream("v2"), t.TempDir())
	if a["memory_lin"] == "" || a["memory_lin"] != same["memory_lin"] || a["boltdb_lin"] != same["boltdb_lin"] {
		t.Fatalf("same content, different hashes: %v vs %v", a, same)
	}
	if a["memory_lin"] == other["memory_lin"] || a["boltdb_lin"] == other["boltdb_lin"] {
		t.Fatalf("different content, same hash: %v vs %v", a, other)
	}
	if a["memory_local"] != other["memory_local"] {
		t.Fatalf("a storage missing from both snapshots differs: %v vs %v", a, other)
	}
}
