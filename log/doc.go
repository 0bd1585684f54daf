// Package log is kvnode's event log: the events every replicated write
// becomes, their versioned binary encoding, and the raft stores they are kept
// in. Import it as eventlog ("github.com/kvnode/kvnode/log") so it does not
// shadow the standard library's log.
//
// # Events
//
// An Event is one write to one storage (Set, MExpire, Delete, Clear) or one
// removal of expired keys decided by the leader's sweeper (Expire). Whoever
// proposes it does all the non-deterministic work first: the leader stamps
// Op.Now with its clock and every item's absolute Deadline is parsed from its
// timeout once, so a replica applying the event needs neither a clock nor a
// parser, and all replicas reach the same state.
//
// # Encoding
//
// An entry is [version][op][body]. The version byte (Version, now 1) lets the
// body change later; the op byte is the drivers.OpKind. An op byte with
// IgnorableBit set that this version does not know decodes to ErrIgnorable,
// and the FSM skips the entry, which allows rolling upgrades to add
// operations older replicas can safely miss (consul's scheme). Everything
// else Decode cannot parse (an unknown version, an unknown op without the
// bit, a truncated body, a length running past the end, trailing bytes) is
// ErrCorrupt: a replica must stop rather than guess.
//
// The body is compact binary with uvarint lengths and zig-zag varints for
// clocks and deadlines (see codec.go). Encoding grows its buffer once;
// decoding bounds every length and count by the bytes left, so a corrupt
// entry cannot make it allocate more than the entry's own size, and copies
// values, because engines keep them beyond the life of the raft entry.
// A new version must keep decoding version 1: entries outlive binaries.
//
// # Stores
//
// OpenStores opens raft's durable state under one directory: the log and
// stable store in raft.db (hashicorp/raft-boltdb/v2, the log fronted by a
// 512-entry raft.LogCache) and snapshots in snapshots/ (raft's
// FileSnapshotStore, keeping two).
package log
