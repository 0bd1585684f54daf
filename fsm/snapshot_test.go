package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
)

// persist takes a snapshot of f and returns the bytes Persist writes,
// through raft's real file snapshot store.
func persist(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	return persistSnap(t, snap)
}

func persistSnap(t *testing.T, snap raft.FSMSnapshot) []byte {
	t.Helper()
	store, err := raft.NewFileSnapshotStore(t.TempDir(), 1, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := store.Create(raft.SnapshotVersionMax, 1, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	_, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func restore(f *FSM, b []byte) error {
	return f.Restore(io.NopCloser(bytes.NewReader(b)))
}

func TestFSM_SnapshotRestore(t *testing.T) {
	src := newPair(t)
	results(t, src, script(t))
	want := stateHash(t, src)

	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Persist runs concurrently with Apply: what it writes is the state at
	// Snapshot time, not what was applied since.
	more := []*raft.Log{
		cmd(14, encode(t, "mem", drivers.Op{Kind: drivers.OpClear, Now: base})),
		cmd(15, encode(t, "bolt", drivers.Op{Kind: drivers.OpSet, Now: base, Items: []drivers.Item{{Key: "late", Value: []byte("l")}}})),
	}
	results(t, src, more)
	b := persistSnap(t, snap)
	snap.Release()

	dst := newPair(t)
	if err := restore(dst, b); err != nil {
		t.Fatal(err)
	}
	checkScriptState(t, dst)
	if got := stateHash(t, dst); !bytes.Equal(got, want) {
		t.Fatalf("restored state %x, want %x", got, want)
	}
	if dst.AppliedIndex() != 13 {
		t.Fatalf("restored AppliedIndex = %d, want 13", dst.AppliedIndex())
	}
	// The restored replica follows the log like the original.
	results(t, dst, more)
	if got, want := stateHash(t, dst), stateHash(t, src); !bytes.Equal(got, want) {
		t.Fatalf("after catching up: %x, want %x", got, want)
	}
	if dst.AppliedIndex() != 15 {
		t.Fatalf("AppliedIndex = %d, want 15", dst.AppliedIndex())
	}
}

func TestFSM_RestoreRejectsDamage(t *testing.T) {
	src := newPair(t)
	results(t, src, script(t))
	good := persist(t, src)

	dst := newPair(t)
	results(t, dst, []*raft.Log{cmd(3, encode(t, "mem", drivers.Op{Kind: drivers.OpSet, Now: base,
		Items: []drivers.Item{{Key: "mine", Value: []byte("m")}}}))})
	before := stateHash(t, dst)

	damaged := map[string][]byte{
		"empty":          {},
		"truncated":      good[:len(good)-1],
		"no trailer":     good[:len(good)-8],
		"half":           good[:len(good)/2],
		"trailing bytes": append(bytes.Clone(good), 0),
		"bad magic":      append([]byte("KVNSNAQ"), good[7:]...),
		"bad version":    append(append([]byte("KVNSNAP"), 3), good[8:]...),
	}
	for _, at := range []int{8, 12, 20, len(good) / 2, len(good) - 20, len(good) - 1} {
		b := bytes.Clone(good)
		b[at] ^= 0x01
		damaged[fmt.Sprintf("flip byte %d", at)] = b
	}
	for name, b := range damaged {
		t.Run(name, func(t *testing.T) {
			err := restore(dst, b)
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot", err)
			}
			if got := stateHash(t, dst); !bytes.Equal(got, before) {
				t.Fatalf("a rejected snapshot changed the state (err %v)", err)
			}
			if dst.AppliedIndex() != 3 {
				t.Fatalf("AppliedIndex = %d, want 3", dst.AppliedIndex())
			}
		})
	}
	if err := restore(dst, good); err != nil {
		t.Fatalf("the undamaged snapshot: %v", err)
	}
}

// A storage configured here but absent from the snapshot ends up empty, at
// the snapshot's index; one present but not configured is skipped.
func TestFSM_RestoreMissingAndExtraStorages(t *testing.T) {
	src := New(map[string]drivers.Engine{"mem": newMemory(t), "extra": newMemory(t)}, testLogger(t))
	results(t, src, []*raft.Log{
		cmd(1, encode(t, "mem", drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "m", Value: []byte("1")}}})),
		cmd(2, encode(t, "extra", drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "e", Value: []byte("1")}}})),
	})
	b := persist(t, src)

	bolt := openBolt(t, filepath.Join(t.TempDir(), "b.db"))
	dst := New(map[string]drivers.Engine{"mem": newMemory(t), "bolt": bolt}, testLogger(t), WithSpoolDir(t.TempDir()))
	results(t, dst, []*raft.Log{
		cmd(1, encode(t, "bolt", drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "stale", Value: []byte("s")}}})),
		cmd(7, encode(t, "bolt", drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "later", Value: []byte("s")}}})),
	})
	if err := restore(dst, b); err != nil {
		t.Fatal(err)
	}
	if st := bolt.Stats(); st.Keys != 0 {
		t.Fatalf("bolt, absent from the snapshot, still holds %d keys", st.Keys)
	}
	if got := bolt.AppliedIndex(); got != 2 {
		t.Fatalf("bolt AppliedIndex = %d, want the snapshot's 2", got)
	}
	mem, _ := dst.Engine("mem")
	if items, err := mem.MGet(0, []string{"m"}); err != nil || len(items) != 1 {
		t.Fatalf("mem after restore: %+v, %v", items, err)
	}
	if dst.AppliedIndex() != 2 {
		t.Fatalf("AppliedIndex = %d, want 2", dst.AppliedIndex())
	}
}

func TestFSM_SnapshotReleasesEachViewOnce(t *testing.T) {
	a := &counting{Engine: newMemory(t)}
	b := &counting{Engine: openBolt(t, filepath.Join(t.TempDir(), "b.db"))}
	f := New(map[string]drivers.Engine{"a": a, "b": b}, testLogger(t))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	persistSnap(t, snap)
	snap.Release()
	snap.Release()
	for name, c := range map[string]*counting{"a": a, "b": b} {
		if c.snaps.Load() != 1 || c.released.Load() != 1 {
			t.Fatalf("%s: %d snapshots, %d releases; want 1 and 1", name, c.snaps.Load(), c.released.Load())
		}
	}

	// When one engine cannot snapshot, the views already taken are released.
	closed := openBolt(t, filepath.Join(t.TempDir(), "z.db"))
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	f = New(map[string]drivers.Engine{"a": a, "z": closed}, testLogger(t))
	if _, err := f.Snapshot(); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Snapshot with a closed engine: %v", err)
	}
	if a.snaps.Load() != 2 || a.released.Load() != 2 {
		t.Fatalf("a: %d snapshots, %d releases after a failed Snapshot", a.snaps.Load(), a.released.Load())
	}
}

// failingSink is a raft.SnapshotSink whose writes fail after limit bytes.
type failingSink struct {
	bytes.Buffer
	limit     int
	cancelled bool
	closed    bool
}

func (s *failingSink) Write(p []byte) (int, error) {
	if s.Len()+len(p) > s.limit {
		return 0, errors.New("disk full")
	}
	return s.Buffer.Write(p)
}
func (s *failingSink) ID() string    { return "test" }
func (s *failingSink) Cancel() error { s.cancelled = true; return nil }
func (s *failingSink) Close() error  { s.closed = true; return nil }

func TestFSM_PersistCancelsOnError(t *testing.T) {
	f := newPair(t)
	results(t, f, script(t))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &failingSink{limit: 10}
	if err := snap.Persist(sink); err == nil {
		t.Fatal("Persist succeeded on a failing sink")
	}
	if !sink.cancelled || sink.closed {
		t.Fatalf("cancelled %v closed %v, want cancelled only", sink.cancelled, sink.closed)
	}
}
