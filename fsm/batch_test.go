package fsm

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
	eventlog "github.com/kvnode/kvnode/log"
)

// A batch entry applies its events one by one, each atomic with its own
// result, exactly as the same events in single entries would.
func TestFSM_BatchEntryAppliesEachEventOnItsOwn(t *testing.T) {
	events := []eventlog.Event{
		{Storage: "mem", Op: drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}}},
		{Storage: "bolt", Op: drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "x", Value: []byte("xx")}}}},
		// Refused whole (a blank key), and nothing else with it.
		{Storage: "mem", Op: drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "c", Value: []byte("3")}, {Key: " "}}}},
		{Storage: "nosuch", Op: drivers.Op{Kind: drivers.OpClear}},
		{Storage: "mem", Op: drivers.Op{Kind: drivers.OpDelete, Keys: []string{"a"}}},
	}
	singles := newPair(t)
	var logs []*raft.Log
	for i, ev := range events {
		ev.Op.Now = base
		logs = append(logs, cmd(uint64(i+1), encode(t, ev.Storage, ev.Op)))
	}
	want := results(t, singles, logs)

	batched := newPair(t)
	data, err := eventlog.EncodeBatch(base, events)
	if err != nil {
		t.Fatal(err)
	}
	got := results(t, batched, []*raft.Log{cmd(5, data)})[0]
	if len(got.Errs) != len(events) {
		t.Fatalf("%d results for %d events", len(got.Errs), len(events))
	}
	for i := range events {
		if errText(got.Errs[i]) != errText(want[i].Err()) {
			t.Errorf("event %d: %v, as a single entry %v", i, got.Errs[i], want[i].Err())
		}
	}
	if !errors.Is(got.Errs[2], drivers.ErrEmptyKey) || !errors.Is(got.Errs[3], ErrUnknownStorage) {
		t.Fatalf("refusals: %v", got.Errs)
	}
	if !bytes.Equal(stateHash(t, batched), stateHash(t, singles)) {
		t.Fatal("a batch reached another state than its events one by one")
	}
	if batched.Clock() != base || batched.AppliedIndex() != 5 {
		t.Fatalf("clock %d applied %d", batched.Clock(), batched.AppliedIndex())
	}
	errs, ok := batched.Outcome(5)
	if !ok || len(errs) != len(events) || !errors.Is(errs[2], drivers.ErrEmptyKey) {
		t.Fatalf("remembered outcome %v, %v", errs, ok)
	}
}

// Replaying a batch over a persistent engine that already holds it applies
// nothing twice.
func TestFSM_BatchReplayOverPersistentEngine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bolt.db")
	bolt := openBolt(t, path)
	f := New(map[string]drivers.Engine{"bolt": bolt}, testLogger(t))
	data, err := eventlog.EncodeBatch(base, []eventlog.Event{
		{Storage: "bolt", Op: drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "k", Value: []byte("v1")}}}},
		{Storage: "bolt", Op: drivers.Op{Kind: drivers.OpDelete, Keys: []string{"k"}}},
		{Storage: "bolt", Op: drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "k", Value: []byte("v2")}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	results(t, f, []*raft.Log{cmd(7, data)})
	before := stateHash(t, f)
	if bolt.AppliedIndex() != 7 {
		t.Fatalf("applied %d", bolt.AppliedIndex())
	}
	again := New(map[string]drivers.Engine{"bolt": bolt}, testLogger(t))
	results(t, again, []*raft.Log{cmd(7, data)})
	if !bytes.Equal(stateHash(t, again), before) {
		t.Fatal("replaying the batch changed the state")
	}
}
