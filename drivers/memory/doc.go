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
// Keys live in 256 maps chosen by a seeded hash (for cheap snapshots, not
// for locking), each holding a 24-byte entry by value: the value and, for
// keys with a TTL, a pointer to a 32-byte expiry record. Expiry records also
// sit in one min-heap ordered by (deadline, key) that knows every record's
// position, so replacing or removing a TTL costs O(log n), finding k expired
// keys costs O(k log k), and there is no goroutine or timer per key. Equal
// timeout texts are shared between keys. With 16-byte keys and 100-byte
// values this comes to about 230 bytes of heap per key, 285 with a TTL
// (BenchmarkFootprint1M).
//
// Snapshot shares the maps with the engine and marks them copy-on-write: it
// returns in microseconds, and a write copies only the shard it touches,
// once per live snapshot. WriteTo then sorts and streams the entries in a
// versioned, CRC-32C-checked format without holding the lock; Restore
// builds a complete new state before swapping it in.
//
// # Ownership of values
//
// The engine takes ownership of the Item.Value slices passed to Apply and
// stores them without copying; callers must not modify them afterwards.
// Values returned by MGet share the stored bytes (with no spare capacity) and
// must be treated as read-only. Because a stored value is never modified in
// place (a Set installs a new slice), a returned value never changes under
// its reader.
package memory
