// Package memory is kvnode's in-memory storage engine: the replacement for
// RoadRunner's "memory" KV driver, implemented as a passive, deterministic
// drivers.Engine so that the same code serves one node (through
// drivers.Local) and a raft cluster (through the fsm package).
//
// State is one map from key to a compact entry (value plus an optional expiry
// record) guarded by a single sync.RWMutex, so every call is atomic and
// linearizable: a reader sees either all or none of a multi-item write and
// never sees a key missing while it is being overwritten. Keys with a
// deadline are also kept in one min-heap ordered by (deadline, key), so
// finding expired keys costs O(k log k) for k keys and there is no goroutine
// or timer per key. The engine never reads the clock: "now" comes from the
// caller on reads and from Op.Now on writes.
//
// Ownership: the engine takes ownership of the Item.Value slices passed to
// Apply and stores them without copying; callers must not modify them
// afterwards. Values returned by MGet share the stored bytes and must be
// treated as read-only. Because the engine never mutates a stored value in
// place (a Set installs a new slice), a returned value never changes under
// its reader.
package memory
