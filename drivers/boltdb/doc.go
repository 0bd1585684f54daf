// Package boltdb is the persistent kvnode Engine, stored in a single bbolt
// file that RoadRunner's boltdb kv driver can also read.
//
// # File layout
//
// Values live in the bucket "default" (Config.Bucket), each one encoded with
// encoding/gob as a []byte exactly as RoadRunner stores it, so an existing
// rr.db can be moved to kvnode and back. Everything kvnode adds lives in
// buckets of its own, which RoadRunner ignores:
//
//   - "kvnode_ttl":    key -> 8-byte big-endian deadline (Unix ns) + the
//     timeout string as the client sent it. Keys without expiry have no entry.
//   - "kvnode_expiry": 8-byte big-endian deadline + key -> empty. The index is
//     ordered by deadline so that Expired is a short cursor scan. Its 8 bytes
//     of deadline limit a key with an expiry to 32760 bytes; keys without one
//     may have bbolt's 32768, as in RoadRunner.
//   - "kvnode_meta":   "applied_index" -> 8-byte big-endian raft index.
//
// # Durability
//
// Apply commits a whole batch of ops, and the applied index, in one bbolt
// read-write transaction: one fsync per batch, or none on a cluster node
// (WithoutSync), where the raft log is the durable record and the file is
// rebuilt from it after an OS crash. Group commit (turning many
// concurrent client writes into one batch) is the caller's job. Ops are
// validated whole before the transaction touches anything, so the only way an
// op can fail half-way is an I/O error, which rolls the whole batch back.
//
// Expired keys are hidden on read as soon as their deadline passes; removing
// them from the file is left to the caller's sweeper (Expired + OpExpire).
//
// # Snapshots
//
// Snapshot holds a read transaction open; WriteTo streams a consistent copy
// of the file from it, framed by a header with the file's length and a
// SHA-256 trailer. Restore writes the stream to a temporary file next to the
// database, checks the frame, then opens the copy read-only and reads every
// record (bbolt's own Tx.Check is not used: it panics on a damaged page in a
// goroutine no caller can recover). Only then is the copy opened for writing
// and renamed over the live file: a crash leaves one whole file or the other,
// each with its own applied index. Open removes copies a crash left behind.
//
// Restore and Close never wait for a Snapshot to be released: raft holds a
// snapshot while it waits for the FSM's Restore, so waiting would close a
// circle. The replaced file stays open, unlinked, for the snapshots that
// still read it, and the last Release closes it (handle.go).
//
// # Files written by RoadRunner
//
// Open accepts a RoadRunner file as it is (values without kvnode buckets get
// no expiry), and drops expiry records whose value RoadRunner deleted while
// it had the file. A key RoadRunner deleted and set again keeps the expiry
// kvnode gave it: the file does not record that it changed.
//
// Open scans the values once to count keys and bytes for Stats.
package boltdb
