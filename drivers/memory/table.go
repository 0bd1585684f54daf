package memory

import (
	"hash/maphash"
	"maps"
	"strings"
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
	// keys collide to exercise over.
	mask   uint64
	shards [numShards]shard
}

func newTable(seed maphash.Seed, mask uint64) table { return table{seed: seed, mask: mask} }

func (t *table) hash(key string) uint64 { return maphash.String(t.seed, key) & t.mask }

// shard indexes the records of its keys. Maps may be nil (empty).
type shard struct {
	// idx maps a key's 64-bit hash to its record, whose key is compared on
	// lookup. Holding no pointers, it costs 16 bytes a slot and nothing to
	// the garbage collector's marking.
	idx map[uint64]loc
	// over holds the keys whose hash another key already holds in idx; with
	// 64-bit hashes it is almost always empty. Its strings are private
	// copies.
	over map[string]loc
	// ttl holds the expiry record of every key whose loc has locTTL set,
	// keyed by the string the record's key points at.
	ttl map[string]*expiry
	// shared is set while an unreleased snapshot may reference the maps:
	// they must be copied before they are written.
	shared bool
}

// pos is the result of a lookup: where key's record is (if found), and
// where to put one.
type pos struct {
	s    *shard
	h    uint64
	l    loc
	val  string
	over bool
}

func (t *table) find(slabs [][]byte, key string) (pos, bool) {
	h := t.hash(key)
	s := &t.shards[h>>(64-shardBits)]
	p := pos{s: s, h: h}
	if l, ok := s.idx[h]; ok {
		if k, v, _ := record(slabs[l.id()], l.off()); k == key {
			p.l, p.val = l, v
			return p, true
		}
	}
	if s.over != nil {
		if l, ok := s.over[key]; ok {
			_, p.val, _ = record(slabs[l.id()], l.off())
			p.l, p.over = l, true
			return p, true
		}
	}
	return p, false
}

// get returns key's value and expiry record.
func (t *table) get(slabs [][]byte, key string) (entry, bool) {
	p, ok := t.find(slabs, key)
	if !ok {
		return entry{}, false
	}
	return p.entry(key), true
}

func (p *pos) entry(key string) entry {
	en := entry{val: p.val}
	if p.l&locTTL != 0 {
		en.exp = p.s.ttl[key]
	}
	return en
}

// writable makes the shard's maps safe to modify and returns the shard.
func (s *shard) writable() *shard {
	if s.shared {
		s.idx = maps.Clone(s.idx)
		s.over = maps.Clone(s.over)
		s.ttl = maps.Clone(s.ttl)
		s.shared = false
	}
	if s.idx == nil {
		s.idx = make(map[uint64]loc)
	}
	return s
}

// set points a found key (p) at l.
func (p *pos) set(key string, l loc) {
	w := p.s.writable()
	if p.over {
		w.over[strings.Clone(key)] = l
	} else {
		w.idx[p.h] = l
	}
}

// insert adds key, not found at p, at l.
func (p *pos) insert(key string, l loc) {
	w := p.s.writable()
	if _, taken := w.idx[p.h]; !taken {
		w.idx[p.h] = l
		return
	}
	if w.over == nil {
		w.over = make(map[string]loc)
	}
	w.over[strings.Clone(key)] = l
}

// del removes a found key (p).
func (p *pos) del(key string) {
	w := p.s.writable()
	if p.over {
		delete(w.over, key)
	} else {
		delete(w.idx, p.h)
	}
}

// setTTL records key's expiry record x (nil: none) in the shard.
func (s *shard) setTTL(key string, x *expiry) {
	w := s.writable()
	if x == nil {
		delete(w.ttl, key)
		return
	}
	if w.ttl == nil {
		w.ttl = make(map[string]*expiry)
	}
	w.ttl[x.key()] = x
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
		n += len(shards[i].idx) + len(shards[i].over)
	}
	return n
}
