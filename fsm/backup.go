package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
)

// SnapshotInfo is what a snapshot stream says about itself.
type SnapshotInfo struct {
	// Index is the applied index recorded in the stream's header.
	Index uint64
	// Storages are the storage names of its sections, in stream order.
	Storages []string
	// Size is the length of the stream in bytes, trailer included.
	Size int64
}

// VerifySnapshot reads a whole snapshot stream as Persist writes it and
// checks its framing and checksum without restoring anything. A damaged
// stream returns an error wrapping ErrBadSnapshot.
func VerifySnapshot(r io.Reader) (SnapshotInfo, error) {
	return VerifySections(r, nil)
}

// VerifySections is VerifySnapshot that also hands each section's engine
// stream to visit (when not nil), which may read as much of it as it likes;
// an error from visit ends the verification with that error.
func VerifySections(r io.Reader, visit func(storage string, section io.Reader) error) (SnapshotInfo, error) {
	var info SnapshotInfo
	cr := &countingReader{r: r}
	br := bufio.NewReaderSize(cr, chunkSize)
	hr := &hashReader{r: br, h: crc64.New(crcTable), w: io.Discard}
	h, err := walk(hr, func(name string, sec io.Reader) error {
		info.Storages = append(info.Storages, name)
		if visit != nil {
			return visit(name, sec)
		}
		return nil
	})
	if err != nil {
		return info, err
	}
	info.Index = h.index
	if err := checkTrailer(br, hr.h.Sum64()); err != nil {
		return info, err
	}
	info.Size = cr.n
	return info, nil
}

// Reindex copies the snapshot stream r to w with the applied index in its
// header replaced by index, its clock raised to at least clock (the
// cluster's FSM.Clock: restoring an old backup must not turn the replicated
// clock back, which would show keys again that linearizable reads already
// saw expire), and the checksum recomputed, verifying r's
// framing and checksum on the way (ErrBadSnapshot). The sections are copied
// unchanged. On error, w holds a partial stream that Restore refuses.
//
// A backup restored into another cluster through raft.Restore must carry
// the index raft gives the restored snapshot there: Restore sets
// AppliedIndex to the header's index, and raft's own bookkeeping, read
// indexes and replay after a restart all assume the two agree.
func Reindex(w io.Writer, r io.Reader, index uint64, clock int64) (SnapshotInfo, error) {
	var info SnapshotInfo
	cr := &countingReader{r: r}
	src := bufio.NewReaderSize(cr, chunkSize)
	h, old, err := recordHeader(src)
	if err != nil {
		return info, err
	}

	fresh := crc64.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(w, fresh), chunkSize)
	if _, err := bw.Write(appendHeader(nil, header{index: index, clock: max(h.clock, clock), count: h.count})); err != nil {
		return info, fmt.Errorf("fsm: reindex: %w", err)
	}
	// The original header is parsed again by walk; the skipping writer keeps
	// it out of the copy, which already has the new one.
	body := &skipWriter{w: bw, skip: len(old)}
	hr := &hashReader{
		r: bufio.NewReaderSize(io.MultiReader(bytes.NewReader(old), src), chunkSize),
		h: crc64.New(crcTable), w: body,
	}
	if _, err := walk(hr, func(name string, _ io.Reader) error {
		info.Storages = append(info.Storages, name)
		return nil
	}); err != nil {
		return info, err
	}
	if err := checkTrailer(hr.r, hr.h.Sum64()); err != nil {
		return info, err
	}
	if err := bw.Flush(); err != nil {
		return info, fmt.Errorf("fsm: reindex: %w", err)
	}
	if _, err := w.Write(binary.BigEndian.AppendUint64(nil, fresh.Sum64())); err != nil {
		return info, fmt.Errorf("fsm: reindex: %w", err)
	}
	info.Index = h.index
	info.Size = cr.n
	return info, nil
}

// recordHeader reads a stream's header and returns it with its bytes.
func recordHeader(r *bufio.Reader) (header, []byte, error) {
	// The bytes are kept as read, so the original checksum covers them.
	rec := &recorder{r: r}
	h, err := readHeader(rec)
	return h, rec.b, err
}

// recorder keeps the bytes read through it.
type recorder struct {
	r *bufio.Reader
	b []byte
}

func (r *recorder) ReadByte() (byte, error) {
	c, err := r.r.ReadByte()
	if err == nil {
		r.b = append(r.b, c)
	}
	return c, err // io.EOF must stay unwrapped
}

// checkTrailer reads the 8-byte trailer and checks it against sum and that
// nothing follows it.
func checkTrailer(br *bufio.Reader, sum uint64) error {
	var t [8]byte
	if _, err := io.ReadFull(br, t[:]); err != nil {
		return fmt.Errorf("%w: trailer: %w", ErrBadSnapshot, noEOF(err))
	}
	if want := binary.BigEndian.Uint64(t[:]); sum != want {
		return fmt.Errorf("%w: checksum %016x, trailer says %016x", ErrBadSnapshot, sum, want)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		if err != nil {
			return fmt.Errorf("%w: after trailer: %w", ErrBadSnapshot, err)
		}
		return fmt.Errorf("%w: bytes after the trailer", ErrBadSnapshot)
	}
	return nil
}

// skipWriter drops the first skip bytes written to it.
type skipWriter struct {
	w    io.Writer
	skip int
}

func (s *skipWriter) Write(p []byte) (int, error) {
	n := len(p)
	if s.skip > 0 {
		k := min(s.skip, len(p))
		s.skip -= k
		p = p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if _, err := s.w.Write(p); err != nil {
		return 0, fmt.Errorf("fsm: reindex: %w", err)
	}
	return n, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err // io.EOF must stay unwrapped
}
