package memory

import (
	"hash/maphash"
	"maps"
)

// shardBits sets how many maps the key space is split into. The split is
// not for locking (one RWMutex guards all of them) but for snapshots: a
// snapshot shares every shard's map and the first write to a shard after it
// copies only that shard (copy-on-write), so taking a snapshot costs
// O(shards) instead of a full copy, and the copying that remains is spread
// over the writes that need it.
const (
	shardBits = 8
	numShards = 1 << shardBits
)

// table is the key space: numShards maps chosen by a seeded hash of the key.
// Shard placement is private to the process; nothing observable (snapshot
// bytes, Hash, Expired order) depends on it.
type table struct {
	seed   maphash.Seed
	shards [numShards]shard
}

type shard struct {
	// m may be nil (empty shard).
	m map[string]entry
	// shared is set while an unreleased snapshot may reference m: m must be
	// copied before it is written.
	shared bool
}

func (t *table) shard(key string) *shard {
	return &t.shards[maphash.String(t.seed, key)>>(64-shardBits)]
}

func (t *table) get(key string) (entry, bool) {
	en, ok := t.shard(key).m[key]
	return en, ok
}

// writable returns the shard's map, ready to be modified.
func (s *shard) writable() map[string]entry {
	if s.shared {
		s.m = maps.Clone(s.m)
		s.shared = false
	}
	if s.m == nil {
		s.m = make(map[string]entry)
	}
	return s.m
}

// reset empties the table; snapshots keep the maps they reference.
func (t *table) reset() {
	for i := range t.shards {
		t.shards[i] = shard{}
	}
}

// share marks every shard as referenced by a snapshot and returns the maps.
func (t *table) share() (ms [numShards]map[string]entry) {
	for i := range t.shards {
		ms[i] = t.shards[i].m
		t.shards[i].shared = ms[i] != nil
	}
	return ms
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
		n += len(shards[i].m)
	}
	return n
}
