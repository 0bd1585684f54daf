package memory

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/drivers"
)

func snapshotBytes(t testing.TB, e *Engine) []byte {
	t.Helper()
	s, err := e.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer s.Release()
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func mustHash(t testing.TB, e *Engine) string {
	t.Helper()
	h, err := e.Hash()
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	if len(h) != 32 {
		t.Fatalf("Hash is %d bytes", len(h))
	}
	return string(h)
}

// populated returns an engine after a random history that leaves plain
// keys, keys with TTL, expired-but-unswept keys, an empty value and a value
// large enough to take Restore's chunked path.
func populated(t testing.TB, seed uint64) (*Engine, int64) {
	t.Helper()
	e := New()
	now := t0
	r := rand.New(rand.NewPCG(seed, 2))
	mustApply(t, e, randomOps(r, e, 400, &now)...)
	mustApply(t, e, setOp(now, it("empty", "", "", 0), it("big", strings.Repeat("x", chunk+chunk/2), ts, now+1e9)))
	errs, err := e.Apply(42, nil)
	if err != nil || len(errs) != 0 {
		t.Fatalf("Apply(42, nil) = %v, %v", errs, err)
	}
	return e, now
}

func TestEngine_SnapshotRestoreRoundTrip(t *testing.T) {
	src, now := populated(t, 1)
	data := snapshotBytes(t, src)

	dst := New()
	mustApply(t, dst, setOp(t0, it("stale", "x", "", 0)))
	// io.MultiReader hides io.ByteReader, taking Restore's buffered path.
	if err := dst.Restore(io.MultiReader(bytes.NewReader(data))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if mustHash(t, dst) != mustHash(t, src) {
		t.Fatal("Hash differs after restore")
	}
	if !bytes.Equal(snapshotBytes(t, dst), data) {
		t.Fatal("snapshot of the restored engine differs")
	}
	if dst.AppliedIndex() != 42 {
		t.Fatalf("AppliedIndex = %d, want 42", dst.AppliedIndex())
	}
	if dst.Stats() != src.Stats() {
		t.Fatalf("Stats = %+v, want %+v", dst.Stats(), src.Stats())
	}
	checkInvariants(t, dst)
	keys := make([]string, 0, 40)
	for k := range allEntries(src) {
		keys = append(keys, k)
	}
	wantState(t, read(t, dst, now, keys...), itemsOf(read(t, src, now, keys...))...)
	a, _ := src.Expired(now+1e9, 1000)
	b, _ := dst.Expired(now+1e9, 1000)
	if len(a) != len(b) {
		t.Fatalf("Expired: %d keys, restored %d", len(a), len(b))
	}
}

func itemsOf(s state) []drivers.Item {
	out := make([]drivers.Item, 0, len(s))
	for _, x := range s {
		out = append(out, x)
	}
	return out
}

func TestEngine_SnapshotIsPointInTime(t *testing.T) {
	e := New()
	mustApply(t, e, setOp(t0, it("a", "1", ts, t0+100), it("b", "2", "", 0)))
	before := mustHash(t, e)
	s, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	mustApply(t, e,
		mexpireOp(t0, it("a", "", "new", t0+500)),
		setOp(t0, it("b", "changed", "", 0)),
		drivers.Op{Kind: drivers.OpClear},
		setOp(t0, it("c", "3", "", 0)),
	)
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	dst := New()
	if err := dst.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if mustHash(t, dst) != before {
		t.Fatal("snapshot saw writes made after it was taken")
	}
}

func TestEngine_RestoreRejectsCorruption(t *testing.T) {
	src := New()
	mustApply(t, src, setOp(t0, it("a", "1", ts, t0+100), it("bb", "22", "", 0), it("c", "", ts, t0+7)))
	data := snapshotBytes(t, src)

	// A small target keeps the ~200 Hash calls below cheap.
	dst := New()
	mustApply(t, dst, setOp(t0, it("keep", "me", ts, t0+9), it("x", "y", "", 0)))
	if _, err := dst.Apply(9, nil); err != nil {
		t.Fatal(err)
	}
	want := mustHash(t, dst)
	wantIndex := dst.AppliedIndex()
	check := func(name string, stream []byte, target error) {
		t.Helper()
		err := dst.Restore(bytes.NewReader(stream))
		if err == nil {
			t.Fatalf("%s: Restore succeeded", name)
		}
		if !errors.Is(err, target) {
			t.Fatalf("%s: Restore error %v, want %v", name, err, target)
		}
		if mustHash(t, dst) != want || dst.AppliedIndex() != wantIndex {
			t.Fatalf("%s: failed Restore changed the state", name)
		}
	}
	for i := range data {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(data)
			bad[i] ^= bit
			target := ErrBadSnapshot
			if i == len(snapMagic) {
				target = ErrSnapshotVersion
			}
			check("flip byte "+itoa(i), bad, target)
		}
	}
	for n := range len(data) {
		check("truncated to "+itoa(n), data[:n], ErrBadSnapshot)
	}
	checkInvariants(t, dst)
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestEngine_RestoreReadsExactlyItsBytes(t *testing.T) {
	a, _ := populated(t, 4)
	b, _ := populated(t, 5)
	var stream bytes.Buffer
	stream.Write(snapshotBytes(t, a))
	stream.Write(snapshotBytes(t, b))
	stream.WriteString("tail")
	br := bufio.NewReader(&stream)
	ra, rb := New(), New()
	if err := ra.Restore(br); err != nil {
		t.Fatal(err)
	}
	if err := rb.Restore(br); err != nil {
		t.Fatal(err)
	}
	if mustHash(t, ra) != mustHash(t, a) || mustHash(t, rb) != mustHash(t, b) {
		t.Fatal("restored states differ")
	}
	rest, _ := br.ReadString(0)
	if rest != "tail" {
		t.Fatalf("left in stream: %q", rest)
	}
}

func TestEngine_HashDeterministic(t *testing.T) {
	a, _ := populated(t, 6)
	b, _ := populated(t, 6)
	if mustHash(t, a) != mustHash(t, b) {
		t.Fatal("same ops, different Hash")
	}
	if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, b)) {
		t.Fatal("same ops, different snapshot bytes")
	}
	c, _ := populated(t, 7)
	if mustHash(t, a) == mustHash(t, c) {
		t.Fatal("different ops, same Hash")
	}

	// Expired but unswept keys are state; sweeping them changes the hash.
	x, y := New(), New()
	for _, e := range []*Engine{x, y} {
		mustApply(t, e, setOp(t0, it("k", "v", ts, t0+1)))
	}
	mustApply(t, y, expireOp(t0+1, drivers.Item{Key: "k", Deadline: t0 + 1}))
	if mustHash(t, x) == mustHash(t, y) {
		t.Fatal("sweeping an expired key did not change Hash")
	}
	// Every field counts.
	base := mustHash(t, New())
	seen := map[string]bool{base: true}
	for _, item := range []drivers.Item{
		it("k", "v", "", 0), it("k", "w", "", 0), it("k", "v", ts, t0+1),
		it("k", "v", ts, t0+2), it("k", "v", "other", t0+2), it("kv", "", "", 0),
	} {
		e := New()
		mustApply(t, e, setOp(t0, item))
		h := mustHash(t, e)
		if seen[h] {
			t.Fatalf("Hash collision for %+v", item)
		}
		seen[h] = true
	}
}

func TestEngine_SnapshotClosed(t *testing.T) {
	e := New()
	s, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Close()
	// A snapshot taken before Close stays writable.
	if _, err := s.WriteTo(&bytes.Buffer{}); err != nil {
		t.Fatalf("WriteTo after Close: %v", err)
	}
	s.Release()
	if _, err := e.Snapshot(); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Snapshot after Close: %v", err)
	}
	if _, err := e.Hash(); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Hash after Close: %v", err)
	}
	if err := e.Restore(bytes.NewReader(snapshotBytes(t, New()))); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Restore after Close: %v", err)
	}
}

func FuzzRestore(f *testing.F) {
	e := New()
	mustApply(f, e, setOp(t0, it("a", "1", ts, t0+100), it("b", "", "", 0)))
	f.Add(snapshotBytes(f, e))
	f.Add(snapshotBytes(f, New()))
	f.Add([]byte(snapMagic + "\x01\xff\xff\xff\xff\xff\xff\xff\xff\x7f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dst := New()
		if err := dst.Restore(bytes.NewReader(data)); err != nil {
			return
		}
		checkInvariants(t, dst)
		if !bytes.Equal(snapshotBytes(t, dst), data) {
			t.Fatal("accepted a stream that does not round-trip")
		}
	})
}

func TestEngine_SnapshotCopyOnWrite(t *testing.T) {
	for _, c := range modelConfigs {
		t.Run(c.name, func(t *testing.T) { testSnapshotCopyOnWrite(t, modelEngine(c.slabSize, c.mask)) })
	}
}

func testSnapshotCopyOnWrite(t *testing.T, e *Engine) {
	var items []drivers.Item
	for i := range 2000 {
		items = append(items, it("k"+strconv.Itoa(i), "v"+strconv.Itoa(i), ts, t0+int64(i%7)+1))
	}
	mustApply(t, e, setOp(t0, items...))
	before := mustHash(t, e)
	s1, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Touch every shard in every way while both snapshots are live.
	r := rand.New(rand.NewPCG(9, 9))
	now := t0
	mustApply(t, e, randomOps(r, e, 300, &now)...)
	mustApply(t, e, deleteOp(now, "k1", "k2"), mexpireOp(now, it("k3", "", "x", now+99)),
		expireOp(now, drivers.Item{Key: "k4", Deadline: t0 + 5}))
	after := mustHash(t, e)

	for _, s := range []drivers.Snapshot{s1, s2} {
		var buf bytes.Buffer
		if _, err := s.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		dst := New()
		if err := dst.Restore(&buf); err != nil {
			t.Fatal(err)
		}
		if mustHash(t, dst) != before {
			t.Fatal("snapshot changed by later writes")
		}
	}
	s1.Release()
	e.mu.RLock()
	live := e.live
	e.mu.RUnlock()
	if live != 1 {
		t.Fatalf("live = %d after one of two releases", live)
	}
	s2.Release()
	s2.Release() // a second Release is harmless
	e.mu.RLock()
	for i := range e.tab.shards {
		if e.tab.shards[i].shared {
			t.Fatalf("shard %d still copy-on-write with no live snapshot", i)
		}
	}
	e.mu.RUnlock()
	if _, err := s1.WriteTo(io.Discard); err == nil {
		t.Fatal("WriteTo after Release succeeded")
	}
	if mustHash(t, e) != after {
		t.Fatal("releasing snapshots changed the engine")
	}
	checkInvariants(t, e)
}
