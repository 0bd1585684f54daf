package memory

import (
	"encoding/binary"
	"unsafe"
)

// Keys and values live in slabs: large byte slices that records are
// appended to and never written again. A slab holds no pointers, so the
// garbage collector neither scans it nor tracks its records one by one, and
// a 16-byte key with a 100-byte value costs 118 bytes, where a key string
// and a value slice took 128 (16 + 112-byte size classes).
//
// Invariant: the bytes of a record never change once it is appended, and a
// slab is never reused: a dead record's space is reclaimed only by copying
// the live records of a slab elsewhere (compact) and dropping the slab. So a
// value handed to a reader, or read by a snapshot without any lock, stays
// valid and unchanged for as long as it is referenced; the garbage collector
// keeps its slab alive.
//
// A record is: uvarint key length | uvarint value length | key | value.

const (
	// defaultSlabSize balances the unused tail of the slab being filled
	// against the number of slabs to pick a compaction victim from.
	defaultSlabSize = 1 << 20
	// A record larger than slabSize/bigDivisor gets a slab of its own, so
	// that a large value never strands much of a shared slab.
	bigDivisor = 4
)

// loc is where a key's current record is: the slab's id and the record's
// offset in it. It leaves the top bits free for hash bits in an index slot
// (see table.go) and is never 0, which marks an empty slot.
type loc uint64

const (
	offBits = 20
	idBits  = 23
	// maxSlabs caps the slab count at 8 Mi: 8 TiB of records in shared
	// slabs, or 2 TiB in records large enough to get a slab of their own.
	maxSlabs = 1<<idBits - 1
	// maxSlabSize keeps every offset in offBits (a record alone in its own
	// slab is at offset 0, whatever its size).
	maxSlabSize     = 1 << offBits
	locTTL      loc = 1 << 63
	locPlace        = 1<<(offBits+idBits) - 1
	offMask         = 1<<offBits - 1
	idMask          = 1<<idBits - 1
)

func makeLoc(id, off int) loc { return loc(uint64(id+1)<<offBits | uint64(off)) } // id < maxSlabs, off < maxSlabSize

func (l loc) id() int  { return int(uint64(l)>>offBits&idMask) - 1 }
func (l loc) off() int { return int(uint64(l) & offMask) }

type slabMeta struct {
	// fill is how many bytes of the slab hold records.
	fill int
	// live is how many of them belong to records still referenced.
	live int
	// own is set for a slab holding a single large record.
	own bool
}

// store owns the slabs. Its methods are called under the engine's write
// lock; readers call record under the read lock (or on a snapshot's copy of
// the slab list, without a lock).
type store struct {
	slabSize int
	// slabs is indexed by id; nil marks a free id. Every slab has its full
	// length: fill is kept in meta, so a copy of this slice made for a
	// snapshot still reads records appended to the current slab before it.
	slabs [][]byte
	meta  []slabMeta
	free  []int
	// cur is the slab being appended to, -1 before the first record.
	cur int
	// size is the sum of all slab lengths; live the sum of live bytes.
	size, live int
	// killed counts the bytes of records ever killed; Apply derives its
	// compaction budget from it.
	killed int
	// compacted counts the slabs compaction has emptied, for tests.
	compacted int
	// victim is the slab being compacted (-1: none) and cursor the offset of
	// its next record to look at.
	victim, cursor int
	// tight keeps dead records to a quarter of the slabs instead of half,
	// for a bounded engine: there the slabs, not the limit, would otherwise
	// decide the memory used, at up to twice the live records under the
	// churn of evictions.
	tight bool
}

func newStore(slabSize int) store {
	return store{slabSize: min(slabSize, maxSlabSize), cur: -1, victim: -1}
}

// record decodes the record at off in slab b. The strings alias the slab.
func record(b []byte, off int) (key, val string, size int) {
	kn, n1 := binary.Uvarint(b[off:])
	vn, n2 := binary.Uvarint(b[off+n1:])
	p := off + n1 + n2
	key = unsafe.String(unsafe.SliceData(b[p:]), kn)         //nolint:gosec // G103: a record never changes (see above); put wrote the lengths
	val = unsafe.String(unsafe.SliceData(b[p+int(kn):]), vn) //nolint:gosec // G103: as key
	return key, val, n1 + n2 + int(kn) + int(vn)
}

func recordSize(k, v int) int {
	return uvarintLen(uint64(k)) + uvarintLen(uint64(v)) + k + v
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// at returns the key and value stored at l.
func (st *store) at(l loc) (key, val string) {
	key, val, _ = record(st.slabs[l.id()], l.off())
	return key, val
}

// put appends a record for key and val and returns its location.
func (st *store) put(key string, val []byte) loc {
	size := recordSize(len(key), len(val))
	var id, off int
	switch {
	case size > st.slabSize/bigDivisor:
		id = st.newSlab(size, true)
	case st.cur < 0 || st.meta[st.cur].fill+size > st.slabSize:
		st.seal()
		st.cur = st.newSlab(st.slabSize, false)
		id = st.cur
	default:
		id = st.cur
	}
	m := &st.meta[id]
	off = m.fill
	b := st.slabs[id][off:off:len(st.slabs[id])]
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = binary.AppendUvarint(b, uint64(len(val)))
	b = append(b, key...)
	_ = append(b, val...)
	m.fill += size
	m.live += size
	st.live += size
	return makeLoc(id, off)
}

// kill marks the record at l, of size bytes, dead and drops its slab once
// nothing in it is live (unless the slab is still being filled or
// compacted).
func (st *store) kill(l loc, size int) {
	id := l.id()
	m := &st.meta[id]
	m.live -= size
	st.live -= size
	st.killed += size
	if m.live == 0 && id != st.cur && id != st.victim {
		st.drop(id)
	}
}

// seal ends appending to the current slab.
func (st *store) seal() {
	if st.cur >= 0 && st.meta[st.cur].live == 0 && st.cur != st.victim {
		st.drop(st.cur)
	}
	st.cur = -1
}

func (st *store) newSlab(size int, own bool) int {
	var id int
	if n := len(st.free); n > 0 {
		id = st.free[n-1]
		st.free = st.free[:n-1]
	} else {
		id = len(st.slabs)
		if id >= maxSlabs {
			// Unreachable short of terabytes of values (see maxSlabs).
			panic("memory: out of slab ids")
		}
		st.slabs = append(st.slabs, nil)
		st.meta = append(st.meta, slabMeta{})
	}
	st.slabs[id] = make([]byte, size)
	st.meta[id] = slabMeta{own: own}
	st.size += size
	return id
}

// drop forgets slab id. Readers and snapshots still holding its bytes keep
// them alive; nothing writes to them again.
func (st *store) drop(id int) {
	st.size -= len(st.slabs[id])
	st.slabs[id] = nil
	st.meta[id] = slabMeta{}
	st.free = append(st.free, id)
}

// garbage is the number of bytes in slabs that hold no live record, the
// unfilled tail of the current slab excepted.
func (st *store) garbage() int {
	g := st.size - st.live
	if st.cur >= 0 {
		g -= len(st.slabs[st.cur]) - st.meta[st.cur].fill
	}
	return g
}

// needCompaction reports whether dead records take more than half of the
// slabs (and at least two slabs' worth), the point from which the emptiest
// slab is at most half live, so compacting it frees at least half of what
// it looks at. That is about the slack the garbage collector allows a heap
// of separately allocated values (GOGC=100); a lower threshold would save
// memory under overwrites but make each of them copy more live records.
func (st *store) needCompaction() bool {
	g := st.garbage()
	if st.tight {
		return g >= 2*st.slabSize && 4*g > st.size
	}
	return g >= 2*st.slabSize && 2*g > st.size
}

// work is how many bytes of records compaction may look at per byte
// killed: a victim is at most half live (three quarters when tight), so
// looking at 2 (4) bytes frees at least 1 and compaction keeps up.
func (st *store) work() int {
	if st.tight {
		return compactionWorkTight
	}
	return compactionWork
}

// pickVictim returns the shared slab with the fewest live bytes, or -1.
func (st *store) pickVictim() int {
	best := -1
	for id, b := range st.slabs {
		if b == nil || id == st.cur || st.meta[id].own {
			continue
		}
		if best < 0 || st.meta[id].live < st.meta[best].live {
			best = id
		}
	}
	return best
}
