package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"os"
	"time"

	"github.com/kvnode/kvnode/drivers"
)

// Restore replaces the state of every replicated storage with rc's, a stream
// written by Persist, and sets AppliedIndex to the snapshot's.
//
// The stream is first spooled to a temporary file while its framing and
// checksum are verified; a bad stream returns ErrBadSnapshot and changes
// nothing. Then each storage found in the snapshot is restored by its
// engine (each builds the new state and swaps it in); a storage configured
// here but absent from the snapshot is cleared, so the FSM holds exactly the
// snapshot's state; a section for a storage not configured here is skipped
// with a warning. Every engine validates its section before swapping it in,
// but if one fails after others were restored the storages are left at
// different points and the error is returned; raft then reports the failed
// restore (a leader sends the snapshot again; at start-up raft.NewRaft
// fails), and AppliedIndex does not move until a restore succeeds.
func (f *FSM) Restore(rc io.ReadCloser) (err error) {
	defer func(start time.Time) { f.observeRestore(start, err) }(time.Now())
	defer func() { _ = rc.Close() }()
	spool, err := os.CreateTemp(f.spoolDir, "kvnode-restore-*")
	if err != nil {
		return fmt.Errorf("fsm: restore: spool: %w", err)
	}
	defer func() {
		_ = spool.Close()
		_ = os.Remove(spool.Name())
	}()
	if err := verify(rc, spool); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("fsm: restore: spool: %w", err)
	}

	seen := make(map[string]bool, len(f.engines))
	h, err := walk(bufio.NewReaderSize(spool, chunkSize), func(name string, sec io.Reader) error {
		eng, ok := f.engines[name]
		if !ok {
			f.log.Warn("snapshot holds a storage this node does not replicate: skipped", "storage", name)
			return nil
		}
		seen[name] = true
		if err := eng.Restore(sec); err != nil {
			return fmt.Errorf("storage %q: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	for _, name := range f.names {
		if seen[name] {
			continue
		}
		if err := f.clear(name, h.index); err != nil {
			return err
		}
	}
	f.outcomes.forget(h.index)
	f.clock.Store(h.clock)
	f.setApplied(h.index)
	f.log.Info("restored snapshot", "index", h.index, "storages", len(seen))
	return nil
}

// clear empties a storage the snapshot does not hold, recording index as
// its applied index so that replay after the snapshot applies everything
// that follows.
func (f *FSM) clear(name string, index uint64) error {
	f.log.Info("snapshot has no section for a replicated storage: clearing it", "storage", name)
	errs, err := f.engines[name].Apply(index, []drivers.Op{{Kind: drivers.OpClear}})
	if err == nil && len(errs) > 0 {
		err = errs[0]
	}
	if err != nil {
		return fmt.Errorf("fsm: restore: clear storage %q: %w", name, err)
	}
	return nil
}

// verify copies the stream in r to spool (without its trailer), checking
// its framing, its checksum and that nothing follows the trailer.
func verify(r io.Reader, spool *os.File) error {
	br := bufio.NewReaderSize(r, chunkSize)
	sw := bufio.NewWriterSize(spool, chunkSize)
	hr := &hashReader{r: br, h: crc64.New(crcTable), w: sw}
	if _, err := walk(hr, func(string, io.Reader) error { return nil }); err != nil {
		return err
	}
	var t [8]byte
	if _, err := io.ReadFull(br, t[:]); err != nil {
		return fmt.Errorf("%w: trailer: %w", ErrBadSnapshot, noEOF(err))
	}
	if got, want := hr.h.Sum64(), binary.BigEndian.Uint64(t[:]); got != want {
		return fmt.Errorf("%w: checksum %016x, trailer says %016x", ErrBadSnapshot, got, want)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		if err != nil {
			return fmt.Errorf("%w: after trailer: %w", ErrBadSnapshot, err)
		}
		return fmt.Errorf("%w: bytes after the trailer", ErrBadSnapshot)
	}
	if err := sw.Flush(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// hashReader passes what it reads through a checksum and a copy.
type hashReader struct {
	r   *bufio.Reader
	h   hash.Hash64
	w   io.Writer
	one [1]byte
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if n > 0 {
		h.h.Write(p[:n])
		if _, werr := h.w.Write(p[:n]); werr != nil {
			return n, fmt.Errorf("spool: %w", werr)
		}
	}
	return n, err // io.EOF must stay unwrapped
}

func (h *hashReader) ReadByte() (byte, error) {
	b, err := h.r.ReadByte()
	if err != nil {
		return 0, err
	}
	h.one[0] = b
	h.h.Write(h.one[:])
	if _, err := h.w.Write(h.one[:]); err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	return b, nil
}
