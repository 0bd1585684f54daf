package memory

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"io"
	"math"
	"slices"
	"unsafe"

	"github.com/kvnode/kvnode/drivers"
)

// Restore replaces the state with a stream written by Snapshot.WriteTo. The
// new map and heap are built and the checksum verified before anything is
// swapped in, so on any error the old state is kept. The applied index
// becomes the one recorded in the snapshot.
//
// If r is an io.ByteReader (a *bufio.Reader, say) Restore reads exactly the
// snapshot's bytes from it, so a caller can store several snapshots in one
// stream; otherwise it buffers and may read past the end.
func (e *Engine) Restore(r io.Reader) error {
	d := newDecoder(r)
	d.seed, d.mask, d.slabSize = e.tab.seed, e.tab.mask, e.st.slabSize
	st, err := d.decode()
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return drivers.ErrClosed
	}
	e.tab.shards = st.tab.shards
	e.st = st.st
	e.st.tight = st.limits.MaxBytes > 0
	e.heap = st.heap
	e.keys.Store(int64(count(&st.tab.shards)))
	e.bytes.Store(st.bytes)
	e.expires.Store(int64(len(st.heap)))
	e.applied.Store(st.index)
	e.limits = st.limits
	e.lru = st.limits.Policy == drivers.PolicyLRU && st.limits.Bounded()
	e.published.Store(&st.limits)
	return nil
}

// Measure reads a stream written by Snapshot.WriteTo, checking it as
// Restore does, and returns what restoring it would hold (keys, bytes,
// usage and limits) without building anything: to refuse a backup larger
// than the storage's limits before restoring it.
func (e *Engine) Measure(r io.Reader) (drivers.Stats, error) {
	d := newDecoder(r)
	d.measure = true
	st, err := d.decode()
	if err != nil {
		return drivers.Stats{}, err
	}
	return drivers.Stats{Keys: st.keys, Bytes: st.bytes, Usage: drivers.Usage(st.keys, st.bytes, st.ttl), Limits: st.limits}, nil
}

// maxPresize bounds the map size taken from a snapshot header before the
// checksum has vouched for it.
const maxPresize = 1 << 20

// chunk is the size above which a length from the stream is not trusted to
// allocate at once: a corrupt length then fails with EOF, not out of memory.
const chunk = 1 << 20

type restored struct {
	tab    table
	st     store
	heap   expiryHeap
	keys   int64
	bytes  int64
	ttl    int64 // keys with a deadline
	index  uint64
	limits drivers.Limits
}

// decoder reads a snapshot and keeps a running CRC of the bytes consumed.
type decoder struct {
	r        io.Reader
	seed     maphash.Seed
	mask     uint64
	slabSize int
	br       io.ByteReader
	crc      uint32
	scratch  []byte
	// key holds the key of the entry being decoded, prev the one before.
	key, prev []byte
	// timeouts shares equal timeout strings, as Engine does.
	timeouts internCache
	// measure decodes without building anything (Measure).
	measure bool
}

// newDecoder reads r byte by byte where r allows it (see Restore), else
// through a buffer.
func newDecoder(r io.Reader) *decoder {
	if br, ok := r.(io.ByteReader); ok {
		return &decoder{r: r, br: br}
	}
	b := bufio.NewReaderSize(r, 64<<10)
	return &decoder{r: b, br: b}
}

func (d *decoder) decode() (*restored, error) {
	head, err := d.bytes(len(snapMagic) + 1)
	if err != nil {
		return nil, err
	}
	if string(head[:len(snapMagic)]) != snapMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrBadSnapshot)
	}
	version := head[len(snapMagic)]
	if version != snapVersion && version != snapVersionV2 {
		return nil, fmt.Errorf("%w: version %d", ErrSnapshotVersion, version)
	}
	index, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	var limits drivers.Limits
	if version == snapVersionV2 {
		if limits, err = d.limits(); err != nil {
			return nil, err
		}
	}
	count, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if limits.MaxKeys > 0 && count > uint64(limits.MaxKeys) {
		return nil, fmt.Errorf("%w: %d keys, more than its own max_keys %d", ErrBadSnapshot, count, limits.MaxKeys)
	}
	st := &restored{index: index, limits: limits}
	if !d.measure {
		st.tab, st.st = newTable(d.seed, d.mask), newStore(d.slabSize)
		// Shards differ in size by a few standard deviations (~sqrt(per)).
		per := int(min(count, maxPresize)) / numShards
		per += per/16 + minSlots
		for i := range st.tab.shards {
			st.tab.shards[i].slots = make([]uint64, per*maxLoadDen/maxLoadNum)
		}
	}
	for i := range count {
		if err := d.entry(st); err != nil {
			return nil, fmt.Errorf("memory: restore entry %d: %w", i, err)
		}
		// A snapshot holds a state the limits held at: one that passes
		// them is damaged, and building it could exhaust memory.
		if u := drivers.Usage(int64(i+1), st.bytes, st.ttl); limits.MaxBytes > 0 && u > limits.MaxBytes {
			return nil, fmt.Errorf("%w: entry %d: %d bytes of usage, more than its own max_memory %d", ErrBadSnapshot, i, u, limits.MaxBytes)
		}
		if i > 0 && string(d.key) <= string(d.prev) {
			return nil, fmt.Errorf("%w: entry %d: keys out of order", ErrBadSnapshot, i)
		}
		d.prev, d.key = d.key, d.prev
	}
	trailer, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if trailer != count {
		return nil, fmt.Errorf("%w: trailer count %d, header %d", ErrBadSnapshot, trailer, count)
	}
	want := d.crc
	sum, err := d.bytes(4)
	if err != nil {
		return nil, err
	}
	if got := binary.LittleEndian.Uint32(sum); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, computed %08x", ErrBadSnapshot, got, want)
	}
	st.heap.heapify()
	st.keys = int64(count) // as many entries were read
	return st, nil
}

// entry decodes one entry into st; the key is left in d.key.
func (d *decoder) entry(st *restored) error {
	kn, err := d.length()
	if err != nil {
		return err
	}
	if kn == 0 {
		return fmt.Errorf("%w: empty key", ErrBadSnapshot)
	}
	if d.key, err = d.read(d.key[:0], kn); err != nil {
		return err
	}
	n, err := d.length()
	if err != nil {
		return err
	}
	var val []byte
	if n <= chunk {
		val, err = d.bytes(n)
	} else {
		val, err = d.owned(n)
	}
	if err != nil {
		return err
	}
	st.bytes += int64(len(d.key) + len(val))
	if d.measure {
		tb, err := d.field()
		if err != nil {
			return err
		}
		deadline, err := d.varint()
		if deadline != 0 {
			st.ttl++
		} else if len(tb) != 0 {
			return fmt.Errorf("%w: timeout without deadline", ErrBadSnapshot)
		}
		return err
	}
	// The key is only read until it is in a slab; a string is allocated
	// for keys that need one (with a TTL) further down.
	k := unsafe.String(unsafe.SliceData(d.key), len(d.key)) //nolint:gosec // G103: see above; put copies k before d.key is reused
	l := st.st.put(k, val)
	tb, err := d.field()
	if err != nil {
		return err
	}
	deadline, err := d.varint()
	if err != nil {
		return err
	}
	var x *expiry
	switch {
	case deadline != 0:
		x = newExpiry(string(d.key), d.timeouts.internBytes(tb, deadline), deadline)
	case len(tb) != 0:
		return fmt.Errorf("%w: timeout without deadline", ErrBadSnapshot)
	}
	// Keys arrive strictly ascending (checked by the caller after this
	// returns), so the key is new unless the stream is corrupt, in which
	// case the whole state is discarded anyway.
	p, _ := st.tab.find(st.st.slabs, k)
	p.insert(l, x)
	if x != nil {
		st.heap = append(st.heap, x)
		st.ttl++
	}
	return nil
}

// limits reads version 2's limits.
func (d *decoder) limits() (drivers.Limits, error) {
	maxBytes, err := d.uvarint()
	if err != nil {
		return drivers.Limits{}, err
	}
	maxKeys, err := d.uvarint()
	if err != nil {
		return drivers.Limits{}, err
	}
	policy, err := d.ReadByte()
	if err != nil {
		return drivers.Limits{}, err
	}
	if maxBytes > math.MaxInt64 || maxKeys > math.MaxInt64 || drivers.Policy(policy) > drivers.PolicyRandom {
		return drivers.Limits{}, fmt.Errorf("%w: bad limits", ErrBadSnapshot)
	}
	return drivers.Limits{MaxBytes: int64(maxBytes), MaxKeys: int64(maxKeys), Policy: drivers.Policy(policy)}, nil
}

// read appends n bytes from the stream to buf, growing it as data arrives
// for lengths beyond chunk.
func (d *decoder) read(buf []byte, n int) ([]byte, error) {
	for n > 0 {
		m := min(n, chunk)
		buf = slices.Grow(buf, m)
		if err := d.full(buf[len(buf) : len(buf)+m]); err != nil {
			return nil, err
		}
		buf = buf[:len(buf)+m]
		n -= m
	}
	return buf, nil
}

// ReadByte lets binary.ReadUvarint read through the checksum.
func (d *decoder) ReadByte() (byte, error) {
	b, err := d.br.ReadByte()
	if err != nil {
		return 0, truncated(err)
	}
	// One table step of CRC-32C: crc32.Update would make b escape.
	c := ^d.crc
	c = castagnoli[byte(c)^b] ^ (c >> 8)
	d.crc = ^c
	return b, nil
}

func (d *decoder) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(d)
	if err != nil && !errors.Is(err, ErrBadSnapshot) {
		err = fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	return v, err
}

func (d *decoder) varint() (int64, error) {
	v, err := binary.ReadVarint(d)
	if err != nil && !errors.Is(err, ErrBadSnapshot) {
		err = fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	return v, err
}

func (d *decoder) length() (int, error) {
	n, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if n > 1<<40 {
		return 0, fmt.Errorf("%w: length %d", ErrBadSnapshot, n)
	}
	return int(n), nil
}

// field reads a length-prefixed field into scratch space, valid until the
// next call.
func (d *decoder) field() ([]byte, error) {
	n, err := d.length()
	if err != nil {
		return nil, err
	}
	if n > chunk {
		return d.owned(n)
	}
	return d.bytes(n)
}

// bytes reads n bytes (n <= chunk, or trusted) into scratch space.
func (d *decoder) bytes(n int) ([]byte, error) {
	if cap(d.scratch) < n {
		d.scratch = make([]byte, n)
	}
	b := d.scratch[:n]
	if err := d.full(b); err != nil {
		return nil, err
	}
	return b, nil
}

// owned reads n bytes into a new slice of exactly that size. Beyond chunk it
// grows as data actually arrives.
func (d *decoder) owned(n int) ([]byte, error) {
	if n <= chunk {
		b := make([]byte, n)
		return b, d.full(b)
	}
	var b []byte
	for len(b) < n {
		m := min(n-len(b), max(chunk, len(b)))
		b = append(b, make([]byte, m)...)
		if err := d.full(b[len(b)-m:]); err != nil {
			return nil, err
		}
	}
	if cap(b) > len(b)+len(b)/8 {
		b = append([]byte(nil), b...)
	}
	return b, nil
}

func (d *decoder) full(b []byte) error {
	if _, err := io.ReadFull(d.r, b); err != nil {
		return truncated(err)
	}
	d.crc = crc32.Update(d.crc, castagnoli, b)
	return nil
}

// truncated marks a stream that ended early as a bad snapshot and passes
// other read errors through.
func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated: %w", ErrBadSnapshot, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("memory: restore: %w", err)
}
