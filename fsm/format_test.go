package fsm

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
)

// FuzzVerify feeds arbitrary streams to the checks Restore runs before it
// touches any engine: they must never panic, and whatever passes them must
// be a stream whose sections walk cleanly from the spool.
func FuzzVerify(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("KVNSNAP\x01\x00\x00"))
	f.Add([]byte("KVNSNAP\x01\x05\x01\x01a\x02xy\x00"))
	src := New(map[string]drivers.Engine{"a": newMemoryF(f), "b": newMemoryF(f)}, nil)
	src.setApplied(9)
	snap, err := src.Snapshot()
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.(*snapshot).write(&buf); err != nil {
		f.Fatal(err)
	}
	snap.Release()
	f.Add(buf.Bytes())
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		spool, err := os.CreateTemp(dir, "spool-*")
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = spool.Close()
			_ = os.Remove(spool.Name())
		}()
		if err := verify(bytes.NewReader(data), spool); err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("verify: %v, want ErrBadSnapshot", err)
			}
			return
		}
		if _, err := spool.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := walk(bufio.NewReader(spool), func(string, io.Reader) error { return nil }); err != nil {
			t.Fatalf("verified stream does not walk from the spool: %v", err)
		}
	})
}

func newMemoryF(f *testing.F) drivers.Engine {
	e := memory.New()
	f.Cleanup(func() { _ = e.Close() })
	if _, err := e.Apply(1, []drivers.Op{{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "k", Value: []byte("v")}}}}); err != nil {
		f.Fatal(err)
	}
	return e
}
