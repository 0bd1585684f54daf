package boltdb

import (
	"bytes"
	"encoding/gob"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kvnode/kvnode/drivers"
)

func TestRestartKeepsValuesTTLsAndIndex(t *testing.T) {
	cfg := testConfig(t)
	e, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, e, 41, setOp(sec,
		item("plain", "p", 0),
		item("later", "l", 100*sec),
		item("soon", "s", 5*sec),
	))
	before := hash(t, e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e = openEngine(t, cfg)
	if e.AppliedIndex() != 41 {
		t.Fatalf("AppliedIndex after restart = %d, want 41", e.AppliedIndex())
	}
	if got := hash(t, e); got != before {
		t.Fatal("Hash changed across restart")
	}
	if got := values(t, e, 10*sec, "plain", "later", "soon"); !maps.Equal(got, map[string]string{"plain": "p", "later": "l"}) {
		t.Fatalf("MGet at 10s = %v: the expired key must stay hidden", got)
	}
	got := ttls(t, e, 10*sec, "plain", "later")
	if got["later"].Timeout != "tlater" || got["later"].Deadline != 100*sec || got["plain"].Timeout != "" {
		t.Fatalf("TTL after restart = %+v", got)
	}
	if ex, err := e.Expired(10*sec, 10); err != nil || len(ex) != 1 || ex[0].Key != "soon" {
		t.Fatalf("Expired after restart = %+v, %v", ex, err)
	}
	if s := e.Stats(); s.Keys != 3 || s.Bytes != int64(len("plainplaterlsoons")) {
		t.Fatalf("Stats after restart = %+v", s)
	}
}

// WithoutSync (a cluster node's engine: the raft log is the durable
// record) commits without fsync, and a clean Close still leaves a whole
// file with every value and the applied index.
func TestWithoutSyncCommitsUnsyncedAndCloseLeavesItWhole(t *testing.T) {
	cfg := testConfig(t)
	e, err := Open(cfg, nil, WithoutSync())
	if err != nil {
		t.Fatal(err)
	}
	if !e.cur.db.NoSync {
		t.Fatal("WithoutSync: bbolt still fsyncs every commit")
	}
	mustApply(t, e, 7, setOp(sec, item("a", "1", 0), item("b", "2", 100*sec)))
	if err := e.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	mustApply(t, e, 8, setOp(sec, item("c", "3", 0)))
	before := hash(t, e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Sync(); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Sync after Close = %v, want ErrClosed", err)
	}

	e = openEngine(t, cfg)
	if e.cur.db.NoSync {
		t.Fatal("a file opened without the option does not fsync")
	}
	if e.AppliedIndex() != 8 || hash(t, e) != before {
		t.Fatalf("after reopening: applied index %d, same content %t", e.AppliedIndex(), hash(t, e) == before)
	}
}

// TestRoadRunnerReadsOurFile opens the file the way RoadRunner's boltdb
// driver does: bucket "default", gob-decode a []byte. RoadRunner keeps TTLs
// in memory and never reads kvnode's buckets, so every value is there for
// it, with no expiry: also one whose deadline has passed but that the
// sweeper has not removed yet (kvnode hides it).
func TestRoadRunnerReadsOurFile(t *testing.T) {
	cfg := testConfig(t)
	e, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"k": []byte("hello"), "empty": {}, "big": bytes.Repeat([]byte{0xfe}, 70000), "expired": []byte("unswept")}
	var items []drivers.Item
	for k, v := range want {
		deadline := int64(4e18)
		if k == "expired" {
			deadline = 2 * sec
		}
		items = append(items, drivers.Item{Key: k, Value: v, Timeout: "2099-01-01T00:00:00Z", Deadline: deadline})
	}
	mustApply(t, e, 0, setOp(sec, items...))
	if got := has(t, e, 3*sec, "expired"); len(got) != 0 {
		t.Fatal("kvnode served an expired key")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := bolt.Open(cfg.File, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("default"))
		if b == nil {
			t.Fatal("no bucket \"default\"")
		}
		for k, v := range want {
			raw := b.Get([]byte(k))
			var got []byte
			if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&got); err != nil {
				t.Fatalf("gob decode %q: %v", k, err)
			}
			if !bytes.Equal(got, v) {
				t.Fatalf("%q = %d bytes, want %d", k, len(got), len(v))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestWeReadRoadRunnerFile reads a file written as RoadRunner writes it.
func TestWeReadRoadRunnerFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rr.db")
	want := map[string]string{"a": "alpha", "b": "", "c": string(bytes.Repeat([]byte("x"), 300))}
	writeRoadRunnerFile(t, file, want)

	e := openEngine(t, Config{File: file})
	if got := values(t, e, sec, "a", "b", "c", "d"); !maps.Equal(got, want) {
		t.Fatalf("MGet = %v", got)
	}
	if got := ttls(t, e, sec, "a"); got["a"].Timeout != "" {
		t.Fatalf("TTL = %+v", got)
	}
	if s := e.Stats(); s.Keys != 3 {
		t.Fatalf("Stats = %+v", s)
	}
	// And written back over by kvnode, RoadRunner's value stays readable.
	mustApply(t, e, 0, setOp(sec, item("a", "beta", 0)))
	if got := values(t, e, sec, "a"); got["a"] != "beta" {
		t.Fatalf("MGet = %v", got)
	}
}

// writeRoadRunnerFile stores values as RoadRunner's boltdb driver does:
// gob-encoded []byte in bucket "default", nothing else.
func writeRoadRunnerFile(t *testing.T, file string, values map[string]string) {
	t.Helper()
	db, err := bolt.Open(file, 0o755, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("default"))
		if err != nil {
			return err
		}
		for k, v := range values {
			var buf bytes.Buffer
			val := []byte(v)
			if err := gob.NewEncoder(&buf).Encode(&val); err != nil {
				return err
			}
			if err := b.Put([]byte(k), buf.Bytes()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestEncodeValueMatchesGob(t *testing.T) {
	for _, n := range []int{0, 1, 2, 125, 126, 127, 128, 129, 250, 255, 256, 257, 65535, 65536, 1 << 20, 3 << 20} {
		v := bytes.Repeat([]byte{byte(n)}, n)
		var buf bytes.Buffer
		if err := gob.NewEncoder(&buf).Encode(&v); err != nil {
			t.Fatal(err)
		}
		if got := encodeValue(v); !bytes.Equal(got, buf.Bytes()) {
			t.Fatalf("len %d: encodeValue differs from encoding/gob", n)
		}
		back, err := decodeValue(buf.Bytes())
		if err != nil || !bytes.Equal(back, v) {
			t.Fatalf("len %d: decodeValue = %d bytes, %v", n, len(back), err)
		}
		if valueLen(buf.Bytes()) != n {
			t.Fatalf("len %d: valueLen = %d", n, valueLen(buf.Bytes()))
		}
	}
	if _, err := decodeValue([]byte("not gob")); err == nil {
		t.Fatal("decodeValue accepted garbage")
	}
}

// TestOpenDropsOrphanedTTL: RoadRunner deleted a key that kvnode had given a
// TTL; its expiry records must not outlive the value.
func TestOpenDropsOrphanedTTL(t *testing.T) {
	cfg := testConfig(t)
	e, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, e, 0, setOp(sec, item("gone", "v", 100*sec), item("kept", "v", 100*sec)))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(cfg.File, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("default")).Delete([]byte("gone")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	e = openEngine(t, cfg)
	ex, err := e.Expired(1<<62, 10)
	if err != nil || len(ex) != 1 || ex[0].Key != "kept" {
		t.Fatalf("Expired = %+v, %v; want only the surviving key", ex, err)
	}
	err = e.view(true, func(b buckets) error {
		if b.ttl.Get([]byte("gone")) != nil {
			t.Error("ttl record of the deleted key survived")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenFinishesInterruptedRestore(t *testing.T) {
	cfg := testConfig(t)
	e, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, e, 3, setOp(sec, item("old", "1", 0)))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	stray := cfg.File + restoreTempSuffix + "123"
	if err := os.WriteFile(stray, []byte("half a snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Crash of an earlier version's Restore, between moving the live file
	// aside and moving the new one in.
	if err := os.Rename(cfg.File, cfg.File+restorePrevSuffix); err != nil {
		t.Fatal(err)
	}
	e = openEngine(t, cfg)
	if got := has(t, e, sec, "old"); len(got) != 1 || e.AppliedIndex() != 3 {
		t.Fatalf("the old file was not put back: %v, index %d", got, e.AppliedIndex())
	}
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stray restore file kept: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	// Crash after the new file is in place, before the old one is removed.
	if err := os.WriteFile(cfg.File+restorePrevSuffix, []byte("old file"), 0o600); err != nil {
		t.Fatal(err)
	}
	e = openEngine(t, cfg)
	if got := has(t, e, sec, "old"); len(got) != 1 {
		t.Fatalf("the current file was not kept: %v", got)
	}
	if _, err := os.Stat(cfg.File + restorePrevSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("replaced file kept: %v", err)
	}
}

// TestLongRoadRunnerKeys: RoadRunner stores keys up to bbolt's limit of
// 32768 bytes. kvnode must delete and overwrite them; only a key given an
// expiry is limited to 32760 bytes, by the expiry index, and the error says
// so.
func TestLongRoadRunnerKeys(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rr.db")
	k32760, k32761, k32768 := strings.Repeat("a", 32760), strings.Repeat("b", 32761), strings.Repeat("c", 32768)
	writeRoadRunnerFile(t, file, map[string]string{k32760: "1", k32761: "2", k32768: "3"})
	e := openEngine(t, Config{File: file})
	if got := has(t, e, sec, k32760, k32761, k32768); len(got) != 3 {
		t.Fatalf("Has found %d of the 3 keys", len(got))
	}

	mustApply(t, e, 1, drivers.Op{Kind: drivers.OpDelete, Now: sec, Keys: []string{k32761, strings.Repeat("d", 40000)}})
	mustApply(t, e, 2, setOp(sec, item(k32768, "new", 0)))
	if got := values(t, e, sec, k32761, k32768); len(got) != 1 || got[k32768] != "new" {
		t.Fatalf("after Delete and Set: %d keys, %q", len(got), got[k32768])
	}

	errs, err := e.Apply(3, []drivers.Op{
		setOp(sec, item(k32768, "with ttl", 100*sec)),
		{Kind: drivers.OpMExpire, Now: sec, Items: []drivers.Item{{Key: k32768, Timeout: "t", Deadline: 100 * sec}}},
		setOp(sec, item(strings.Repeat("e", 32769), "too long", 0)),
		setOp(sec, item(k32760, "with ttl", 100*sec)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"32760", "32760", "32768"} {
		if !errors.Is(errs[i], ErrInvalidItem) || !strings.Contains(errs[i].Error(), want) {
			t.Errorf("op %d: error %v, want ErrInvalidItem naming the limit %s", i, errs[i], want)
		}
	}
	if errs[3] != nil {
		t.Fatalf("a 32760-byte key with a TTL was refused: %v", errs[3])
	}
	if got := ttls(t, e, sec, k32760, k32768); got[k32768].Deadline != 0 || got[k32760].Deadline != 100*sec {
		t.Fatalf("TTL = %+v: refused ops must change nothing", got)
	}

	// An expiry already in the past removes the key: no index entry needed.
	mustApply(t, e, 4, setOp(2*sec, item(k32768, "gone", sec)))
	if got := has(t, e, sec, k32768); len(got) != 0 {
		t.Fatal("Set with a past deadline kept the key")
	}
	ex, err := e.Expired(200*sec, 10)
	if err != nil || len(ex) != 1 || ex[0].Key != k32760 {
		t.Fatalf("Expired = %d items, %v", len(ex), err)
	}
	mustApply(t, e, 5, drivers.Op{Kind: drivers.OpExpire, Now: 200 * sec, Items: ex})
	if s := e.Stats(); s.Keys != 0 {
		t.Fatalf("Stats = %+v after removing every key", s)
	}
}
