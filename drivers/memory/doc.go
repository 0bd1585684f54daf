// Package memory is kvnode's in-memory storage engine: the replacement for
// RoadRunner's "memory" KV driver, implemented as a passive, deterministic
// drivers.Engine so that the same code serves one node (through
// drivers.Local) and a raft cluster (through the fsm package).
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
// indexed in 256 maps chosen by a seeded hash (for cheap snapshots, not for
// locking) from the key's 64-bit hash to its record's location; the key is
// compared on lookup, and the rare key whose hash another key holds goes to
// a small map keyed by the key itself. Space of overwritten and deleted
// records is reclaimed by compaction, a little per Apply (compact.go).
// Keys with a TTL also have a 32-byte expiry record, in a per-shard map and
// in one min-heap ordered by (deadline, key) that knows every record's
// position, so replacing or removing a TTL costs O(log n), finding k expired
// keys costs O(k log k), and there is no goroutine or timer per key. Equal
// timeout texts are shared between keys. With 16-byte keys and 100-byte
// values this comes to about 160 bytes of heap per key
// (BenchmarkFootprint1M).
//
// Snapshot shares the maps (and the immutable slabs) with the engine and
// marks the maps copy-on-write: it
// returns in microseconds, and a write copies only the shard it touches,
// once per live snapshot. WriteTo then sorts and streams the entries in a
// versioned, CRC-32C-checked format without holding the lock; Restore
// builds a complete new state before swapping it in.
//
// # Ownership of values
//
// Apply copies keys and values into the slabs; callers may reuse the
// Item.Value slices afterwards. Values returned by MGet share the stored
// bytes (with no spare capacity) and must be treated as read-only. Because a
// record is never modified once written and a slab is never reused (see
// slab.go), a returned value never changes under its reader.
package memory
