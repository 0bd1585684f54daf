package boltdb

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kvnode/kvnode/drivers"
)

func fill(t *testing.T, e *Engine, index uint64, n int) {
	t.Helper()
	var items []drivers.Item
	for i := range n {
		var d int64
		if i%3 == 0 {
			d = int64(1000+i) * sec
		}
		items = append(items, item(fmt.Sprintf("key-%04d", i), strings.Repeat("v", i%50), d))
	}
	mustApply(t, e, index, setOp(sec, items...))
}

func snapshotBytes(t *testing.T, e *Engine) []byte {
	t.Helper()
	s, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v (buffer %d)", n, err, buf.Len())
	}
	return buf.Bytes()
}

func TestSnapshotRestoreIntoFreshEngine(t *testing.T) {
	src := newEngine(t)
	fill(t, src, 12, 500)
	data := snapshotBytes(t, src)

	dst := newEngine(t)
	mustApply(t, dst, 3, setOp(sec, item("stale", "x", 0)))
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if hash(t, src) != hash(t, dst) {
		t.Fatal("Hash differs after restore")
	}
	if dst.AppliedIndex() != 12 {
		t.Fatalf("AppliedIndex = %d, want 12", dst.AppliedIndex())
	}
	if dst.Stats() != src.Stats() {
		t.Fatalf("Stats = %+v, want %+v", dst.Stats(), src.Stats())
	}
	if got := has(t, dst, sec, "stale"); len(got) != 0 {
		t.Fatal("restore kept a key of the old state")
	}
	if got := ttls(t, dst, sec, "key-0003"); got["key-0003"].Deadline != 1003*sec {
		t.Fatalf("TTL after restore = %+v", got)
	}
	// The restored file is the live one: writes land and survive a restart.
	mustApply(t, dst, 13, setOp(sec, item("after", "1", 0)))
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	again := openEngine(t, dst.cfg)
	if again.AppliedIndex() != 13 || len(has(t, again, sec, "after", "key-0001")) != 2 {
		t.Fatalf("after reopen: index %d, keys %v", again.AppliedIndex(), has(t, again, sec, "after", "key-0001"))
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dst.cfg.File), "*restore*"))
	if len(leftovers) != 0 {
		t.Fatalf("restore left files behind: %v", leftovers)
	}
}

func TestSnapshotIsPointInTime(t *testing.T) {
	e := newEngine(t)
	mustApply(t, e, 1, setOp(sec, item("a", "1", 0)))
	want := hash(t, e)
	s, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Writes go on while the snapshot is held (they must not block on it).
	mustApply(t, e, 2, setOp(sec, item("a", "2", 0), item("b", "3", 0)))
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	s.Release()
	s.Release() // harmless

	dst := newEngine(t)
	if err := dst.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if hash(t, dst) != want || dst.AppliedIndex() != 1 {
		t.Fatalf("restored state is not the snapshot's: index %d, %v", dst.AppliedIndex(), values(t, dst, sec, "a", "b"))
	}
}

func TestRestoreBadStreamKeepsOldState(t *testing.T) {
	src := newEngine(t)
	fill(t, src, 5, 300)
	good := snapshotBytes(t, src)

	e := newEngine(t)
	mustApply(t, e, 9, setOp(sec, item("mine", "kept", 0)))
	want := hash(t, e)

	// Damage inside an intact frame (as if the source file itself were
	// damaged) must be caught by the checks after the checksum.
	db := good[len(snapshotMagic)+8 : len(good)-sha256.Size]
	flipped := bytes.Clone(db)
	for i := 4096 * 2; i < len(flipped); i += 97 {
		flipped[i] ^= 0x5a
	}
	badMeta := bytes.Clone(db)
	copy(badMeta[16:], "garbage-garbage-garbage")
	copy(badMeta[4096+16:], "garbage-garbage-garbage")
	corruptStream := bytes.Clone(good)
	corruptStream[len(corruptStream)/2] ^= 1

	cases := map[string][]byte{
		"empty":                 nil,
		"garbage":               bytes.Repeat([]byte("not a bolt file "), 1000),
		"truncated":             good[:len(good)/2],
		"no checksum":           good[:len(good)-sha256.Size],
		"flipped bit":           corruptStream,
		"framed garbage":        frame(bytes.Repeat([]byte("not a bolt file "), 1000)),
		"framed truncated file": frame(db[:len(db)/2]),
		"framed header only":    frame(db[:4096*2]),
		"framed flipped pages":  frame(flipped),
		"framed bad meta pages": frame(badMeta),
		"framed foreign bolt":   frame(plainBoltFile(t)),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			err := e.Restore(bytes.NewReader(data))
			if err == nil {
				t.Fatal("Restore accepted a bad stream")
			}
			t.Log(err)
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore error %v does not wrap ErrBadSnapshot", err)
			}
			if hash(t, e) != want || e.AppliedIndex() != 9 {
				t.Fatal("the old state was not kept")
			}
			if got := values(t, e, sec, "mine"); got["mine"] != "kept" {
				t.Fatalf("MGet = %v", got)
			}
		})
	}
	mustApply(t, e, 10, setOp(sec, item("still", "writable", 0)))
	entries, err := os.ReadDir(filepath.Dir(e.cfg.File))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("failed restores left files behind: %v", entries)
	}
}

func TestRestoreFromReaderError(t *testing.T) {
	e := newEngine(t)
	mustApply(t, e, 1, setOp(sec, item("a", "1", 0)))
	boom := errors.New("network down")
	err := e.Restore(&failingReader{data: []byte("partial"), err: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("Restore = %v, want the reader's error", err)
	}
	if got := values(t, e, sec, "a"); !maps.Equal(got, map[string]string{"a": "1"}) {
		t.Fatalf("MGet = %v", got)
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestHashIgnoresAppliedIndexAndOrder(t *testing.T) {
	a, b := newEngine(t), newEngine(t)
	mustApply(t, a, 1, setOp(sec, item("x", "1", 5*sec), item("y", "2", 0)))
	mustApply(t, b, 0, setOp(sec, item("y", "2", 0)))
	mustApply(t, b, 77, setOp(sec, item("x", "1", 5*sec)))
	if hash(t, a) != hash(t, b) {
		t.Fatal("same state, different Hash")
	}
	mustApply(t, b, 78, drivers.Op{Kind: drivers.OpMExpire, Now: sec, Items: []drivers.Item{{Key: "x", Timeout: "tx", Deadline: 6 * sec}}})
	if hash(t, a) == hash(t, b) {
		t.Fatal("a different deadline must change the Hash")
	}
}

// frame wraps a database file the way snapshot.WriteTo does.
func frame(db []byte) []byte {
	out := []byte(snapshotMagic)
	out = binary.BigEndian.AppendUint64(out, uint64(len(db)))
	out = append(out, db...)
	sum := sha256.Sum256(db)
	return append(out, sum[:]...)
}

// plainBoltFile is a valid bbolt file without kvnode's buckets.
func plainBoltFile(t *testing.T) []byte {
	t.Helper()
	file := filepath.Join(t.TempDir(), "plain.db")
	db, err := bolt.Open(file, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("default"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
