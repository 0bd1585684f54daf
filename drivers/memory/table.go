package memory

import (
	"hash/maphash"
	"slices"
)

// shardBits sets how many maps the key space is split into. The split is
// not for locking (one RWMutex guards all of them) but for snapshots: a
// snapshot shares every shard's maps and the first write to a shard after it
// copies only that shard (copy-on-write), so taking a snapshot costs
// O(shards) instead of a full copy, and the copying that remains is spread
// over the writes that need it.
const (
	shardBits = 8
	numShards = 1 << shardBits
)

// table is the key space: numShards shards chosen by a seeded hash of the
// key. Shard placement and hashes are private to the process; nothing
// observable (snapshot bytes, Hash, Expired order) depends on them.
type table struct {
	seed maphash.Seed
	// mask is applied to every hash: all ones, except in tests that make
	// keys collide.
	mask   uint64
	shards [numShards]shard
}

func newTable(seed maphash.Seed, mask uint64) table { return table{seed: seed, mask: mask} }

func (t *table) hash(key string) uint64 { return maphash.String(t.seed, key) & t.mask }

// shard indexes the records of its keys in an open-addressing hash table
// with linear probing: 8 bytes a slot (a loc and hashBits of the key's
// hash), no pointers, no per-key allocation, and growth by half again its
// size, so at 1M keys it costs about 11 bytes a key where a Go map of
// hash to location took 38. The hash bits in a slot give its home position,
// so growing never reads a key, and filter the slots whose key is compared
// on lookup to about one in two million.
type shard struct {
	// slots may be nil (empty shard); 0 marks an empty slot.
	slots []uint64
	// exps runs parallel to slots: the expiry record of the key in each
	// slot, nil for none. It stays nil until the shard holds a key with a
	// TTL, so keys without one cost nothing here.
	exps []*expiry
	// stamps runs parallel to slots too: when each key was last used
	// (see recency.go), for the lru policy; nil otherwise. Unlike slots and
	// exps it is node-local, never part of a snapshot, and readers update
	// it atomically under the read lock.
	stamps []uint32
	n      int
	// shared is set while an unreleased snapshot may reference slots and
	// exps: they must be copied before they are written.
	shared bool
}

const (
	// hashBits of a key's hash, below the shard bits, are kept in its slot.
	hashBits  = 64 - offBits - idBits
	hashShift = 64 - shardBits - hashBits
	slotShift = offBits + idBits
	// A table grows when more than maxLoadNum/maxLoadDen of it is in use:
	// linear probing stays short up to there.
	maxLoadNum, maxLoadDen = 4, 5
	minSlots               = 8
)

func slotHash(x uint64) uint64 { return x >> slotShift }

func slotLoc(x uint64) loc { return loc(x) & locPlace }

// home is where a key with hash bits hb starts probing in n slots: the
// table is ordered by hb, so growing needs only the slots.
func home(hb uint64, n int) int { return int(hb * uint64(n) >> hashBits) } // n < 2^43

// pos is the result of a lookup: the slot holding key's record (if found),
// or the one a record for it would go to.
type pos struct {
	s   *shard
	hb  uint64
	i   int
	l   loc
	val string
	// size is the record's size in its slab.
	size int
}

func (t *table) find(slabs [][]byte, key string) (pos, bool) {
	h := t.hash(key)
	s := &t.shards[h>>(64-shardBits)]
	p := pos{s: s, hb: h >> hashShift & (1<<hashBits - 1), i: -1}
	n := len(s.slots)
	if n == 0 {
		return p, false
	}
	for i := home(p.hb, n); ; {
		x := s.slots[i]
		if x == 0 {
			p.i = i
			return p, false
		}
		if slotHash(x) == p.hb {
			l := slotLoc(x)
			if k, v, size := record(slabs[l.id()], l.off()); k == key {
				p.i, p.l, p.val, p.size = i, l, v, size
				return p, true
			}
		}
		if i++; i == n {
			i = 0
		}
	}
}

// get returns key's value and expiry record.
func (t *table) get(slabs [][]byte, key string) (entry, bool) {
	p, ok := t.find(slabs, key)
	if !ok {
		return entry{}, false
	}
	return p.entry(), true
}

// entry returns the found key's value and expiry record.
func (p *pos) entry() entry {
	en := entry{val: p.val}
	if p.s.exps != nil {
		en.exp = p.s.exps[p.i]
	}
	return en
}

// writable makes the shard safe to modify (slots keep their positions) and
// returns it.
func (s *shard) writable() *shard {
	if s.shared {
		s.slots = slices.Clone(s.slots)
		s.exps = slices.Clone(s.exps)
		s.shared = false
	}
	return s
}

// set points a found key (p) at l with expiry record x (nil: none).
func (p *pos) set(l loc, x *expiry) {
	w := p.s.writable()
	w.slots[p.i] = uint64(l) | p.hb<<slotShift
	w.setExp(p.i, x)
}

// insert adds a key not found at p, at l with expiry record x.
func (p *pos) insert(l loc, x *expiry) {
	w := p.s.writable()
	if (w.n+1)*maxLoadDen > len(w.slots)*maxLoadNum {
		w.grow()
		p.i = home(p.hb, len(w.slots))
		for w.slots[p.i] != 0 {
			if p.i++; p.i == len(w.slots) {
				p.i = 0
			}
		}
	}
	w.slots[p.i] = uint64(l) | p.hb<<slotShift
	w.setExp(p.i, x)
	w.n++
}

func (s *shard) setExp(i int, x *expiry) {
	if s.exps == nil {
		if x == nil {
			return
		}
		s.exps = make([]*expiry, len(s.slots))
	}
	s.exps[i] = x
}

func (s *shard) grow() {
	oldSlots, oldExps, oldStamps := s.slots, s.exps, s.stamps
	n := max(minSlots, len(oldSlots)+len(oldSlots)/2)
	s.slots = make([]uint64, n)
	if oldExps != nil {
		s.exps = make([]*expiry, n)
	}
	if oldStamps != nil {
		s.stamps = make([]uint32, n)
	}
	for j, x := range oldSlots {
		if x == 0 {
			continue
		}
		i := home(slotHash(x), n)
		for s.slots[i] != 0 {
			if i++; i == n {
				i = 0
			}
		}
		s.slots[i] = x
		if oldExps != nil {
			s.exps[i] = oldExps[j]
		}
		if oldStamps != nil {
			s.stamps[i] = oldStamps[j]
		}
	}
}

// del removes a found key (p), moving back the slots after it that would
// otherwise be cut off from their home by the new gap.
func (p *pos) del() {
	w := p.s.writable()
	n := len(w.slots)
	i := p.i
	for j := i; ; {
		if j++; j == n {
			j = 0
		}
		x := w.slots[j]
		if x == 0 {
			break
		}
		// x may fill the gap at i unless its home lies in (i, j].
		k := home(slotHash(x), n)
		if i < j && (k <= i || k > j) || i > j && k <= i && k > j {
			w.slots[i] = x
			if w.exps != nil {
				w.exps[i] = w.exps[j]
			}
			if w.stamps != nil {
				w.stamps[i] = w.stamps[j]
			}
			i = j
		}
	}
	w.slots[i] = 0
	if w.exps != nil {
		w.exps[i] = nil
	}
	if w.stamps != nil {
		w.stamps[i] = 0
	}
	w.n--
}

// reset empties the table; snapshots keep the maps they reference.
func (t *table) reset() {
	for i := range t.shards {
		t.shards[i] = shard{}
	}
}

// share marks every shard as referenced by a snapshot and returns a copy of
// them.
func (t *table) share() [numShards]shard {
	for i := range t.shards {
		t.shards[i].shared = true
	}
	return t.shards
}

// unshare clears every shared flag; only valid when no snapshot is live.
func (t *table) unshare() {
	for i := range t.shards {
		t.shards[i].shared = false
	}
}

// count returns the number of keys in shards.
func count(shards *[numShards]shard) int {
	n := 0
	for i := range shards {
		n += shards[i].n
	}
	return n
}

// each calls f with the location and expiry record of every key in the
// shard.
func (s *shard) each(f func(loc, *expiry)) {
	for i, x := range s.slots {
		if x == 0 {
			continue
		}
		var exp *expiry
		if s.exps != nil {
			exp = s.exps[i]
		}
		f(slotLoc(x), exp)
	}
}
