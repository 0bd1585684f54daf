package boltdb

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kvnode/kvnode/drivers"
)

// faultBound is how long a Restore or Close of a small file may take before
// the test calls it stuck (it takes milliseconds).
const faultBound = 10 * time.Second

// TestRestoreDoesNotWaitForSnapshots is issue 8, defect 8. raft's
// takeSnapshot holds an FSM snapshot while it waits for raft's main
// goroutine, which waits for the FSM goroutine's Restore: a Restore that
// waits for the snapshot's release never ends. Restore must finish while a
// snapshot is held, reads must go on during and after it, and the snapshot
// must still stream the state it was taken of (raft persists it
// concurrently) until its release closes the replaced file.
func TestRestoreDoesNotWaitForSnapshots(t *testing.T) {
	e := newEngine(t)
	fill(t, e, 7, 300)
	mustApply(t, e, 8, setOp(sec, item("who", "old", 0), item("who2", "old", 0)))
	oldHash, oldStats := hash(t, e), e.Stats()
	oldDB := currentDB(e)
	held, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			held.Release()
		}
	}
	t.Cleanup(release)

	src := newEngine(t)
	mustApply(t, src, 20, setOp(sec, item("who", "new", 0), item("who2", "new", 0), item("only-new", "x", 0)))
	data := snapshotBytes(t, src)

	stopReads := make(chan struct{})
	readDone := make(chan error, 1)
	var reads int
	go func() {
		var err error
		reads, err = readUntil(e, stopReads)
		readDone <- err
	}()
	restored := make(chan error, 1)
	go func() { restored <- e.Restore(bytes.NewReader(data)) }()
	select {
	case err := <-restored:
		close(stopReads)
		if err != nil {
			t.Fatalf("Restore: %v", err)
		}
	case <-time.After(faultBound):
		release() // let the stuck Restore, and the reads behind it, end
		t.Logf("Restore once the snapshot was released: %v", <-restored)
		close(stopReads)
		t.Logf("reads: %v", <-readDone)
		t.Fatalf("Restore did not finish within %s while a snapshot was held", faultBound)
	}
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d reads while Restore ran", reads)

	if hash(t, e) != hash(t, src) || e.AppliedIndex() != 20 || e.Stats() != src.Stats() {
		t.Fatalf("after Restore: index %d, stats %+v, values %v", e.AppliedIndex(), e.Stats(), values(t, e, sec, "who", "only-new"))
	}
	mustApply(t, e, 21, setOp(sec, item("after", "1", 0)))
	if got := values(t, e, sec, "after", "who"); got["after"] != "1" || got["who"] != "new" {
		t.Fatalf("write after Restore: %v", got)
	}
	// The restored file, opened under its temporary name, snapshots whole.
	again := newEngine(t)
	if err := again.Restore(bytes.NewReader(snapshotBytes(t, e))); err != nil || hash(t, again) != hash(t, e) {
		t.Fatalf("snapshot of the restored file: %v", err)
	}

	// Streamed after the Restore, the held snapshot is still the old state.
	var buf bytes.Buffer
	if _, err := held.WriteTo(&buf); err != nil {
		t.Fatalf("WriteTo after Restore: %v", err)
	}
	old := newEngine(t)
	if err := old.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if hash(t, old) != oldHash || old.AppliedIndex() != 8 || old.Stats() != oldStats {
		t.Fatalf("held snapshot streamed index %d, stats %+v: not the state it was taken of", old.AppliedIndex(), old.Stats())
	}

	dir := filepath.Dir(e.cfg.File)
	if n, ok := deletedFilesOpen(dir); ok && n != 1 {
		t.Fatalf("%d replaced files open while the snapshot is held, want 1", n)
	}
	release()
	if _, err := oldDB.Begin(false); !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		t.Fatalf("replaced database after the last release: Begin = %v, want it closed", err)
	}
	if n, ok := deletedFilesOpen(dir); ok && n != 0 {
		t.Fatalf("%d replaced files still open after the release", n)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("Restore left files behind: %v", entries)
	}
}

// readUntil reads two keys always written together until stop is closed;
// every read must succeed and see both from the same state.
func readUntil(e *Engine, stop <-chan struct{}) (reads int, err error) {
	for ; ; reads++ {
		select {
		case <-stop:
			return reads, nil
		default:
		}
		got, err := e.MGet(sec, []string{"who", "who2"})
		if err != nil {
			return reads, fmt.Errorf("read during Restore: %w", err)
		}
		if len(got) != 2 || string(got[0].Value) != string(got[1].Value) {
			return reads, fmt.Errorf("read during Restore saw a mixed state: %+v", got)
		}
	}
}

// TestCloseDoesNotWaitForSnapshots: Close stops the engine at once, a held
// snapshot still streams the state it was taken of, and its release closes
// the file, so that it can be opened again.
func TestCloseDoesNotWaitForSnapshots(t *testing.T) {
	cfg := testConfig(t)
	e := openEngine(t, cfg)
	mustApply(t, e, 3, setOp(sec, item("k", "v", 0)))
	want := hash(t, e)
	db := currentDB(e)
	held, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			held.Release()
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(faultBound):
		held.Release()
		t.Logf("Close once the snapshot was released: %v", <-closed)
		t.Fatalf("Close did not return within %s while a snapshot was held", faultBound)
	}
	if _, err := e.Has(sec, []string{"k"}); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Has after Close = %v", err)
	}
	if err := e.Restore(bytes.NewReader(snapshotBytesOf(t, held))); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Restore after Close = %v", err)
	}
	var buf bytes.Buffer
	if _, err := held.WriteTo(&buf); err != nil {
		t.Fatalf("WriteTo after Close: %v", err)
	}
	held.Release()
	if _, err := db.Begin(false); !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		t.Fatalf("after the last release: Begin = %v, want the database closed", err)
	}
	cfg.LockTimeout = 100 * time.Millisecond
	again := openEngine(t, cfg)
	if hash(t, again) != want || again.AppliedIndex() != 3 {
		t.Fatal("reopened file lost the state")
	}
	if err := again.Restore(&buf); err != nil || hash(t, again) != want {
		t.Fatalf("snapshot streamed after Close: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(cfg.File)); len(entries) != 1 {
		t.Fatalf("files left behind: %v", entries)
	}
}

func snapshotBytesOf(t *testing.T, s drivers.Snapshot) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// deletedFilesOpen counts this process's descriptors of files in dir that
// have been unlinked: files a Restore replaced and nobody has closed. ok is
// false where /proc/self/fd does not exist (not Linux).
func deletedFilesOpen(dir string) (n int, ok bool) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir+string(os.PathSeparator)) && strings.HasSuffix(target, " (deleted)") {
			n++
		}
	}
	return n, true
}

// currentDB is the bbolt database the engine serves from.
func currentDB(e *Engine) *bolt.DB { return e.cur.db }

// TestFinishRestoreReportsStatErrors: only a missing <file>.restore-prev
// means no restore was interrupted. Taking any other failure to look for it
// as "none" would let Open create an empty file and cleanRestore delete the
// live file set aside there. A file in place of the directory makes Stat
// fail with ENOTDIR, even for root (which a permission-denied directory
// would not stop).
func TestFinishRestoreReportsStatErrors(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := finishRestore(filepath.Join(notDir, "kv.db")); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Fatalf("finishRestore under a file = %v, want the Stat error", err)
	}
}
