package fsm

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
	eventlog "github.com/kvnode/kvnode/log"
)

const timeout = "2023-11-14T22:13:40Z" // base + 20s, as a client would send it

// script is a log touching every operation on both engines, including a
// configuration entry, an unknown storage and an op the engine refuses.
func script(t *testing.T) []*raft.Log {
	t.Helper()
	d10, d20 := base+10*sec, base+20*sec
	ops := []struct {
		storage string
		op      drivers.Op
	}{
		{"mem", drivers.Op{Kind: drivers.OpSet, Now: base, Items: []drivers.Item{
			{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2"), Timeout: "t10", Deadline: d10}, {Key: "c", Value: []byte("3")},
		}}},
		{"bolt", drivers.Op{Kind: drivers.OpSet, Now: base, Items: []drivers.Item{
			{Key: "a", Value: []byte("1"), Timeout: "t10", Deadline: d10}, {Key: "b", Value: []byte("2")},
		}}},
		{"mem", drivers.Op{Kind: drivers.OpMExpire, Now: base + sec, Items: []drivers.Item{{Key: "a", Timeout: timeout, Deadline: d20}, {Key: "missing", Timeout: timeout, Deadline: d20}}}},
		{"bolt", drivers.Op{Kind: drivers.OpDelete, Now: base + sec, Keys: []string{"b", "missing"}}},
		// The sweeper saw b with its deadline: compare-and-delete removes it.
		{"mem", drivers.Op{Kind: drivers.OpExpire, Now: base + 11*sec, Items: []drivers.Item{{Key: "b", Deadline: d10}}}},
		// a was re-expired to d20 after the sweeper saw d10: it survives.
		{"mem", drivers.Op{Kind: drivers.OpExpire, Now: base + 11*sec, Items: []drivers.Item{{Key: "a", Deadline: d10}}}},
		{"bolt", drivers.Op{Kind: drivers.OpClear, Now: base + 12*sec}},
		{"bolt", drivers.Op{Kind: drivers.OpSet, Now: base + 12*sec, Items: []drivers.Item{
			{Key: "x", Value: []byte("xx"), Timeout: timeout, Deadline: d20}, {Key: "y", Value: nil},
			{Key: "gone", Value: []byte("past"), Timeout: "t0", Deadline: base},
		}}},
		{"nosuch", drivers.Op{Kind: drivers.OpClear, Now: base}},
		{"mem", drivers.Op{Kind: drivers.OpSet, Now: base + 13*sec, Items: []drivers.Item{{Key: "ok"}, {Key: " "}}}},
		{"mem", drivers.Op{Kind: drivers.OpDelete, Now: base + 13*sec, Keys: []string{"c"}}},
		{"bolt", drivers.Op{Kind: drivers.OpSet, Now: base + 14*sec, Items: []drivers.Item{{Key: "z", Value: []byte("zz")}}}},
	}
	var logs []*raft.Log
	for _, o := range ops {
		logs = append(logs, cmd(uint64(len(logs)+1), encode(t, o.storage, o.op)))
		if len(logs) == 4 {
			logs = append(logs, &raft.Log{Index: 5, Term: 1, Type: raft.LogConfiguration,
				Data: raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: "127.0.0.1:1"}}})})
		}
	}
	return logs
}

// checkScriptState asserts what script leaves behind, read at base+15s, so
// that hash comparisons are not comparing two empty states.
func checkScriptState(t *testing.T, f *FSM) {
	t.Helper()
	now := base + 15*sec
	mem, _ := f.Engine("mem")
	got, err := mem.TTL(now, []string{"a", "b", "c", "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Key != "a" || got[0].Timeout != timeout || got[0].Deadline != base+20*sec {
		t.Fatalf("mem TTL = %+v, want only a expiring at %s", got, timeout)
	}
	bolt, _ := f.Engine("bolt")
	items, err := bolt.MGet(now, []string{"a", "b", "x", "y", "z", "gone"})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, it := range items {
		keys = append(keys, it.Key)
	}
	if len(keys) != 3 || keys[0] != "x" || keys[1] != "y" || keys[2] != "z" {
		t.Fatalf("bolt keys = %v, want [x y z]", keys)
	}
}

func TestFSM_ApplyResults(t *testing.T) {
	f := newPair(t)
	logs := script(t)
	rs := results(t, f, logs)
	for i, r := range rs {
		switch {
		case r == nil:
		case logs[i].Index == 10:
			if !errors.Is(r.Err(), ErrUnknownStorage) {
				t.Errorf("log 10: err %v, want ErrUnknownStorage", r.Err())
			}
		case logs[i].Index == 11:
			if !errors.Is(r.Err(), drivers.ErrEmptyKey) {
				t.Errorf("log 11: err %v, want ErrEmptyKey", r.Err())
			}
		case r.Err() != nil:
			t.Errorf("log %d: %v", logs[i].Index, r.Err())
		}
	}
	if got := f.AppliedIndex(); got != 13 {
		t.Fatalf("AppliedIndex = %d, want 13", got)
	}
	checkScriptState(t, f)
}

func TestFSM_Determinism(t *testing.T) {
	a, b := newPair(t), newPair(t)
	results(t, a, script(t))
	results(t, b, script(t))
	checkScriptState(t, a)
	if ha, hb := stateHash(t, a), stateHash(t, b); !bytes.Equal(ha, hb) {
		t.Fatalf("same log, different state: %x vs %x", ha, hb)
	}
	results(t, b, []*raft.Log{cmd(14, encode(t, "bolt", drivers.Op{Kind: drivers.OpDelete, Now: base, Keys: []string{"z"}}))})
	if ha, hb := stateHash(t, a), stateHash(t, b); bytes.Equal(ha, hb) {
		t.Fatal("StateHash did not change with the state")
	}
}

// One ApplyBatch must reach the state, and the results, of applying the
// entries one by one, while calling each engine once with its last index.
func TestFSM_BatchGroupsByStorage(t *testing.T) {
	mem := &counting{Engine: newMemory(t)}
	bolt := &counting{Engine: openBolt(t, filepath.Join(t.TempDir(), "b.db"))}
	batched := New(map[string]drivers.Engine{"mem": mem, "bolt": bolt}, testLogger(t))
	single := newPair(t)

	logs := script(t)
	got := results(t, batched, logs)
	for i, l := range logs {
		r := single.Apply(l)
		if l.Type != raft.LogCommand {
			if r != nil {
				t.Fatalf("Apply(%v) = %v", l.Type, r)
			}
			continue
		}
		if want := r.(*Result); errText(want.Err()) != errText(got[i].Err()) || want.Index != got[i].Index {
			t.Fatalf("log %d: batched %+v, single %+v", l.Index, got[i], want)
		}
	}
	if hb, hs := stateHash(t, batched), stateHash(t, single); !bytes.Equal(hb, hs) {
		t.Fatalf("batched state %x != one-by-one state %x", hb, hs)
	}
	if want := []applyCall{{index: 12, ops: 6}}; !equalCalls(mem.applies, want) {
		t.Fatalf("mem applies = %+v, want %+v", mem.applies, want)
	}
	if want := []applyCall{{index: 13, ops: 5}}; !equalCalls(bolt.applies, want) {
		t.Fatalf("bolt applies = %+v, want %+v", bolt.applies, want)
	}
	if single.AppliedIndex() != 13 || batched.AppliedIndex() != 13 {
		t.Fatalf("AppliedIndex single %d batched %d", single.AppliedIndex(), batched.AppliedIndex())
	}
}

func equalCalls(a, b []applyCall) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A boltdb engine records its applied index with the data, so replaying the
// log from the start after a restart skips what it already holds.
func TestFSM_BoltReplaySkipsApplied(t *testing.T) {
	ops := []drivers.Op{
		{Kind: drivers.OpSet, Now: base, Items: []drivers.Item{{Key: "a", Value: []byte("1")}}},
		{Kind: drivers.OpMExpire, Now: base, Items: []drivers.Item{{Key: "a", Timeout: timeout, Deadline: base + 20*sec}}},
		{Kind: drivers.OpDelete, Now: base, Keys: []string{"a"}},
		{Kind: drivers.OpSet, Now: base, Items: []drivers.Item{{Key: "a", Value: []byte("2")}}},
		{Kind: drivers.OpMExpire, Now: base, Items: []drivers.Item{{Key: "b", Timeout: timeout, Deadline: base + 20*sec}}},
		{Kind: drivers.OpSet, Now: base, Items: []drivers.Item{{Key: "b", Value: []byte("b")}}},
		{Kind: drivers.OpExpire, Now: base + 30*sec, Items: []drivers.Item{{Key: "a", Deadline: base + 5*sec}}},
		{Kind: drivers.OpSet, Now: base, Items: []drivers.Item{{Key: "c", Value: []byte("c"), Timeout: timeout, Deadline: base + 20*sec}}},
		{Kind: drivers.OpExpire, Now: base + 30*sec, Items: []drivers.Item{{Key: "c", Deadline: base + 20*sec}}},
		{Kind: drivers.OpSet, Now: base, Items: []drivers.Item{{Key: "d", Value: []byte("d")}}},
		{Kind: drivers.OpDelete, Now: base, Keys: []string{"b"}},
		{Kind: drivers.OpSet, Now: base, Items: []drivers.Item{{Key: "a", Value: []byte("3")}}},
	}
	var logs []*raft.Log
	for i, op := range ops {
		logs = append(logs, cmd(uint64(i+1), encode(t, "bolt", op)))
	}
	path := filepath.Join(t.TempDir(), "replay.db")

	first := openBolt(t, path)
	New(map[string]drivers.Engine{"bolt": first}, testLogger(t)).ApplyBatch(logs[:10])
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	reopened := &counting{Engine: openBolt(t, path)}
	if got := reopened.AppliedIndex(); got != 10 {
		t.Fatalf("reopened AppliedIndex = %d, want 10", got)
	}
	f := New(map[string]drivers.Engine{"bolt": reopened}, testLogger(t))
	for _, r := range results(t, f, logs) {
		if r.Err() != nil {
			t.Fatalf("replay: log %d: %v", r.Index, r.Err())
		}
	}
	if want := []applyCall{{index: 12, ops: 2}}; !equalCalls(reopened.applies, want) {
		t.Fatalf("replay applied %+v, want only entries 11-12: %+v", reopened.applies, want)
	}
	once := New(map[string]drivers.Engine{"bolt": openBolt(t, filepath.Join(t.TempDir(), "once.db"))}, testLogger(t))
	once.ApplyBatch(logs)
	if hr, ho := stateHash(t, f), stateHash(t, once); !bytes.Equal(hr, ho) {
		t.Fatalf("replayed state %x != state applied once %x", hr, ho)
	}
	items, err := reopened.MGet(base, []string{"a", "b", "c", "d"})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].Key != "a" || string(items[0].Value) != "3" || items[1].Key != "d" {
		t.Fatalf("state after replay = %+v, want a=3 and d", items)
	}
	if f.AppliedIndex() != 12 || reopened.AppliedIndex() != 12 {
		t.Fatalf("AppliedIndex fsm %d engine %d, want 12", f.AppliedIndex(), reopened.AppliedIndex())
	}
}

func TestFSM_UnknownOpPanics(t *testing.T) {
	f := newPair(t)
	err := mustPanic(t, func() { f.Apply(cmd(1, []byte{eventlog.Version, 0x07, 0})) })
	if !errors.Is(err, eventlog.ErrCorrupt) {
		t.Fatalf("panic %v, want ErrCorrupt", err)
	}
	valid := encode(t, "mem", drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "k", Value: []byte("v")}}})
	err = mustPanic(t, func() { f.ApplyBatch([]*raft.Log{cmd(2, valid[:len(valid)-1])}) })
	if !errors.Is(err, eventlog.ErrCorrupt) || !strings.Contains(err.Error(), "log entry 2 (term 1)") {
		t.Fatalf("truncated entry: panic %v, want ErrCorrupt naming the entry's index and term", err)
	}
	if f.AppliedIndex() != 0 {
		t.Fatalf("AppliedIndex moved to %d past a corrupt entry", f.AppliedIndex())
	}
}

func TestFSM_IgnorableOpSkipped(t *testing.T) {
	f := newPair(t)
	before := stateHash(t, f)
	r, ok := f.Apply(cmd(1, []byte{eventlog.Version, 0x90, 1, 2, 3})).(*Result)
	if !ok || r.Err() != nil || r.Index != 1 {
		t.Fatalf("ignorable op: %+v", r)
	}
	if !bytes.Equal(before, stateHash(t, f)) {
		t.Fatal("an ignorable op changed the state")
	}
	if f.AppliedIndex() != 1 {
		t.Fatalf("AppliedIndex = %d, want 1", f.AppliedIndex())
	}
}

func TestFSM_UnknownStorageIsAResult(t *testing.T) {
	f := newPair(t)
	r := f.Apply(cmd(1, encode(t, "other", drivers.Op{Kind: drivers.OpClear}))).(*Result)
	if !errors.Is(r.Err(), ErrUnknownStorage) {
		t.Fatalf("err %v, want ErrUnknownStorage", r.Err())
	}
}

// An engine that cannot apply a committed batch must stop the replica.
func TestFSM_EngineFailurePanics(t *testing.T) {
	bolt := openBolt(t, filepath.Join(t.TempDir(), "closed.db"))
	f := New(map[string]drivers.Engine{"bolt": bolt}, testLogger(t))
	if err := bolt.Close(); err != nil {
		t.Fatal(err)
	}
	err := mustPanic(t, func() { f.Apply(cmd(1, encode(t, "bolt", drivers.Op{Kind: drivers.OpClear}))) })
	if !errors.Is(err, ErrApplyFailed) || !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("panic %v, want ErrApplyFailed wrapping ErrClosed", err)
	}
}
