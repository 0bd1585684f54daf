package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
)

// The snapshot stream:
//
//	magic "KVNSNAP"  version:byte  index:uvarint  [clock:varint]  count:uvarint
//	count × section, names strictly increasing:
//	    name: uvarint length + bytes
//	    the engine's stream as chunks: (length:uvarint > 0, bytes)*  then 0
//	trailer: CRC-64/ECMA, 8 bytes big-endian, over everything before it
//
// Engine streams are chunked because an engine does not know its size
// before writing it. Version 2 added clock (FSM.Clock at the snapshot's
// index); version 1 streams are still read, with an unknown clock (0).
const (
	magic           = "KVNSNAP"
	snapshotVersion = 2
	chunkSize       = 64 << 10
	// maxNameLen bounds a storage name read from a stream, so a corrupt
	// length cannot allocate much.
	maxNameLen = 4096
)

var crcTable = crc64.MakeTable(crc64.ECMA)

// header is what a snapshot stream says about itself.
type header struct {
	index uint64 // the FSM's applied index when the snapshot was taken
	clock int64  // the FSM's clock at that index (0: unknown)
	count uint64 // sections
}

func appendHeader(b []byte, h header) []byte {
	b = append(b, magic...)
	b = append(b, snapshotVersion)
	b = binary.AppendUvarint(b, h.index)
	b = binary.AppendVarint(b, h.clock)
	return binary.AppendUvarint(b, h.count)
}

// readHeader reads a stream's header: magic, version and fields.
func readHeader(r io.ByteReader) (header, error) {
	var h header
	var m [len(magic) + 1]byte
	for i := range m {
		b, err := r.ReadByte()
		if err != nil {
			return h, fmt.Errorf("%w: header: %w", ErrBadSnapshot, noEOF(err))
		}
		m[i] = b
	}
	if string(m[:len(magic)]) != magic {
		return h, fmt.Errorf("%w: bad magic %q", ErrBadSnapshot, m[:len(magic)])
	}
	version := m[len(magic)]
	if version != 1 && version != snapshotVersion {
		return h, fmt.Errorf("%w: unsupported version %d", ErrBadSnapshot, version)
	}
	var err error
	if h.index, err = binary.ReadUvarint(r); err != nil {
		return h, fmt.Errorf("%w: index: %w", ErrBadSnapshot, noEOF(err))
	}
	if version >= 2 {
		if h.clock, err = binary.ReadVarint(r); err != nil {
			return h, fmt.Errorf("%w: clock: %w", ErrBadSnapshot, noEOF(err))
		}
	}
	if h.count, err = binary.ReadUvarint(r); err != nil {
		return h, fmt.Errorf("%w: section count: %w", ErrBadSnapshot, noEOF(err))
	}
	return h, nil
}

// chunkWriter frames whatever is written to it as chunks of up to
// chunkSize bytes; Close writes the terminating empty chunk.
type chunkWriter struct {
	w   *bufio.Writer
	buf []byte
}

func newChunkWriter(w *bufio.Writer) *chunkWriter {
	return &chunkWriter{w: w, buf: make([]byte, 0, chunkSize)}
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := copy(c.buf[len(c.buf):cap(c.buf)], p)
		c.buf = c.buf[:len(c.buf)+k]
		p = p[k:]
		if len(c.buf) == cap(c.buf) {
			if err := c.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (c *chunkWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	var l [binary.MaxVarintLen64]byte
	if _, err := c.w.Write(l[:binary.PutUvarint(l[:], uint64(len(c.buf)))]); err != nil {
		return err // wrapped once by Persist
	}
	_, err := c.w.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

func (c *chunkWriter) Close() error {
	if err := c.flush(); err != nil {
		return err
	}
	return c.w.WriteByte(0)
}

// byteReader is what the parser reads from.
type byteReader interface {
	io.Reader
	io.ByteReader
}

// sectionReader yields one section's engine stream, removing the chunk
// framing; it returns io.EOF at the terminating empty chunk.
type sectionReader struct {
	r    byteReader
	left uint64 // bytes left in the current chunk
	done bool
}

func (s *sectionReader) Read(p []byte) (int, error) {
	if s.done {
		return 0, io.EOF
	}
	if s.left == 0 {
		n, err := binary.ReadUvarint(s.r)
		if err != nil {
			return 0, fmt.Errorf("%w: chunk length: %w", ErrBadSnapshot, noEOF(err))
		}
		if n == 0 {
			s.done = true
			return 0, io.EOF
		}
		s.left = n
	}
	if uint64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= uint64(n)
	if errors.Is(err, io.EOF) {
		if s.left > 0 || n == 0 {
			return n, fmt.Errorf("%w: %w", ErrBadSnapshot, io.ErrUnexpectedEOF)
		}
		err = nil
	}
	return n, err
}

// noEOF turns io.EOF into io.ErrUnexpectedEOF: inside a snapshot, the
// stream ending is always a truncation.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// walk parses a snapshot stream up to (not including) the trailer, calling
// visit for each section with a reader of the engine's stream; whatever
// visit leaves unread is drained. Framing errors wrap ErrBadSnapshot.
func walk(r byteReader, visit func(name string, section io.Reader) error) (header, error) {
	h, err := readHeader(r)
	if err != nil {
		return h, err
	}
	prev := ""
	for i := range h.count {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return h, fmt.Errorf("%w: section %d name: %w", ErrBadSnapshot, i, noEOF(err))
		}
		if n > maxNameLen {
			return h, fmt.Errorf("%w: section %d: name length %d", ErrBadSnapshot, i, n)
		}
		name := make([]byte, n)
		if _, err := io.ReadFull(r, name); err != nil {
			return h, fmt.Errorf("%w: section %d name: %w", ErrBadSnapshot, i, noEOF(err))
		}
		if i > 0 && string(name) <= prev {
			return h, fmt.Errorf("%w: section %q after %q", ErrBadSnapshot, name, prev)
		}
		prev = string(name)
		sec := &sectionReader{r: r}
		if err := visit(prev, sec); err != nil {
			return h, err
		}
		if _, err := io.Copy(io.Discard, sec); err != nil {
			return h, fmt.Errorf("section %q: %w", prev, err)
		}
	}
	return h, nil
}
