// Package memory is kvnode's in-memory storage engine: the replacement for
// RoadRunner's "memory" KV driver, implemented as a passive, deterministic
// drivers.Engine so that the same code serves one node (through
// drivers.Standalone) and a raft cluster (through the fsm package).
//
// # Consistency
//
// One sync.RWMutex guards the whole state, so every call is atomic and
// linearizable: a reader sees either all or none of a multi-item write and
// never sees a key missing while it is being overwritten. Apply validates
// each op before taking the lock, so an op either applies whole or not at
// all. The engine never reads the clock: "now" comes from the caller on
// reads and from Op.Now on writes, and a key is hidden from the nanosecond
// its deadline is reached.
//
// # Layout
//
// Keys and values are copied into append-only 1 MiB slabs (slab.go), one
// record of key and value per write, which hold no pointers: the garbage
// collector neither scans them nor tracks records one by one. Keys are
// indexed in 256 open-addressing tables chosen by a seeded hash (for cheap
// snapshots, not for locking), 8 bytes a slot: the record's location and
// some bits of the key's hash; the key itself is compared in the slab on
// lookup (table.go). Space of overwritten and deleted records is reclaimed
// by compaction, a little per Apply (compact.go).
//
// Keys with a TTL also have a 32-byte expiry record, referenced from an
// array parallel to their shard's slots and from one min-heap ordered by
// (deadline, key) that knows every record's position, so replacing or
// removing a TTL costs O(log n), finding k expired keys costs O(k log k),
// and there is no goroutine or timer per key. Equal timeout texts are
// shared between keys. With 16-byte keys and 100-byte values this comes to
// about 131 bytes of heap per key, 118 of them the record, and about 210
// with a TTL (BenchmarkFootprint1M).
//
// Snapshot shares the tables (and the immutable slabs) with the engine and
// marks the tables copy-on-write: it returns in microseconds, and a write
// copies only the shard it touches, once per live snapshot. WriteTo then
// sorts and streams the entries in a versioned, CRC-32C-checked format
// without holding the lock; Restore builds a complete new state before
// swapping it in.
//
// # Ownership of values
//
// Apply copies keys and values into the slabs; callers may reuse the
// Item.Value slices afterwards. Values returned by MGet share the stored
// bytes (with no spare capacity) and must be treated as read-only. Because a
// record is never modified once written and a slab is never reused (see
// slab.go), a returned value never changes under its reader.
package memory
