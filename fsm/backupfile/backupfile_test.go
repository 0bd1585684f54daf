package backupfile

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/fsm"
)

// snapshot save used to write FILE.tmp with O_TRUNC, following a symlink
// planted under that name: another user could make it overwrite any file
// the operator can write. The temporary file is now a new one of its own.
func TestCreateBackup_IgnoresPlantedTmpSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(victim, []byte("precious data"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "backup.kvsnap")
	if err := os.Symlink(victim, file+".tmp"); err != nil {
		t.Fatal(err)
	}

	for _, commit := range []bool{false, true} {
		bw, err := Create(file, Meta{NodeID: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bw.Write([]byte("stream")); err != nil {
			t.Fatal(err)
		}
		if commit {
			if err := bw.Commit(); err != nil {
				t.Fatal(err)
			}
		} else {
			bw.Abort()
		}
		if got, err := os.ReadFile(victim); err != nil || string(got) != "precious data" {
			t.Fatalf("commit=%v: the symlink's target now holds %q (%v)", commit, got, err)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil || !strings.HasPrefix(string(b), backupMagic) {
		t.Fatalf("backup not written: %v", err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup mode %v, %v; want 0600", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if name := e.Name(); name != "backup.kvsnap" && name != "backup.kvsnap.tmp" {
			t.Errorf("left behind: %s", name)
		}
	}
}

// bufSink collects a state machine snapshot.
type bufSink struct{ bytes.Buffer }

func (*bufSink) ID() string    { return "test" }
func (*bufSink) Cancel() error { return nil }
func (*bufSink) Close() error  { return nil }

// snapshotStream is the fsm snapshot stream of a memory storage "mem"
// holding one key.
func snapshotStream(t *testing.T) []byte {
	t.Helper()
	e := memory.New()
	if errs, err := e.Apply(1, []drivers.Op{{Kind: drivers.OpSet, Now: 1, Items: []drivers.Item{{Key: "k", Value: []byte("v")}}}}); err != nil || len(errs) > 0 && errs[0] != nil {
		t.Fatal(err, errs)
	}
	snap, err := fsm.New(map[string]drivers.Engine{"mem": e}, nil).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

func TestBackup_RoundTripAndDamage(t *testing.T) {
	stream := snapshotStream(t)
	file := filepath.Join(t.TempDir(), "b.kvsnap")
	meta := Meta{NodeID: "n1", RaftIndex: 7, RaftTerm: 2, Size: int64(len(stream)),
		Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Version: "v1"}
	bw, err := Create(file, meta)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bw.Write(stream); err != nil {
		t.Fatal(err)
	}
	if err := bw.Commit(); err != nil {
		t.Fatal(err)
	}

	var read int
	b, err := Open(file, func(n int) { read += n })
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(b.Stream())
	_ = b.Close()
	sum := sha256.Sum256(stream)
	switch {
	case err != nil || !bytes.Equal(got, stream):
		t.Errorf("stream read back differs (%v)", err)
	case b.Meta != meta:
		t.Errorf("meta %+v, want %+v", b.Meta, meta)
	case !slices.Equal(b.Info.Storages, []string{"mem"}) || !bytes.Equal(b.StreamSum, sum[:]):
		t.Errorf("info %+v, stream sum %x", b.Info, b.StreamSum)
	case read != len(stream):
		t.Errorf("onRead was told %d bytes, want %d", read, len(stream))
	}

	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(good)
	flipped[len(flipped)-40] ^= 1 // in the stream, before the digest
	trailer := slices.Clone(good)
	trailer[len(trailer)-1] ^= 1
	for name, data := range map[string][]byte{
		"flipped stream byte": flipped,
		"flipped digest byte": trailer,
		"truncated":           good[:len(good)-1],
		"not a backup":        []byte("hello"),
	} {
		path := filepath.Join(t.TempDir(), "bad.kvsnap")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := Open(path, nil); !errors.Is(err, ErrNotIntact) {
			if b != nil {
				_ = b.Close()
			}
			t.Errorf("%s: Open = %v, want ErrNotIntact", name, err)
		}
	}
}
