// Package fsm is kvnode's raft state machine: it applies the event log
// (package log, imported as eventlog) to the replicated storages, each a
// drivers.Engine (memory, boltdb), and snapshots and restores them together.
//
// # Determinism
//
// The FSM reads no clock and uses no randomness: every event carries the
// proposer's clock (Op.Now) and absolute deadlines, and engines are
// deterministic, so replicas that apply the same log hold the same state
// (StateHash is equal). Every node must configure the same replicated
// storages: an event for a storage a node lacks yields ErrUnknownStorage
// there and changes nothing.
//
// # Applying
//
// raft hands committed entries to ApplyBatch. Each command entry returns a
// *Result (always that concrete type) with one business outcome per event it
// holds (Errs; Err for an entry of one event): ErrUnknownStorage, or the
// engine's per-op error such as an empty key, the same on every replica. Configuration entries return nil but advance
// AppliedIndex. Ops are grouped by storage, in log order, and each engine
// gets one Apply per batch with the index of its last op: for boltdb that is
// one transaction and one fsync per batch, with the index stored in it.
//
// Replay safety: an op whose index is not above its engine's AppliedIndex
// is skipped. A boltdb engine persists that index with its data, so when raft
// replays the log after a restart (from the start, or from a snapshot older
// than the file), entries the file already holds are not applied twice. A
// memory engine starts at 0 and replays everything.
//
// # Stopping rather than diverging
//
// ApplyBatch panics, after logging the entry at error level, in two cases:
// an entry that does not decode (eventlog.ErrCorrupt: unknown version,
// unknown op without the ignorable bit, damaged body), and an engine that
// fails a committed batch as a whole (ErrApplyFailed: an I/O error such as a
// full disk). Skipping the entry would make this replica differ from the
// others forever; stopping lets an operator fix the cause, after which the
// node catches up from the log or a snapshot. A persistent engine commits
// nothing of a failed batch, and what other engines committed in the same
// batch is skipped on replay by the rule above. An unknown op with the
// ignorable bit is logged as a warning and skipped: it exists for rolling
// upgrades.
//
// Shut raft down before closing the engines: an Apply on a closed engine is
// such a batch failure.
//
// # Applied index
//
// AppliedIndex is the last entry applied; WaitApplied blocks until it
// reaches an index (for read-your-writes and linearizable reads). raft does
// not pass no-op and barrier entries to an FSM, so they do not move it: wait
// for the index of a command (an ApplyFuture's Index), or use raft.Barrier,
// whose return means everything before it is applied.
//
// # Snapshots
//
// Snapshot captures every engine's point-in-time view and the applied index
// on the FSM goroutine; Persist then streams them, concurrently with Apply:
//
//	"KVNSNAP" version=2 index:uvarint clock:varint count:uvarint
//	per storage, in name order: name, then the engine's stream in chunks
//	    (uvarint length, bytes) ended by a zero length
//	CRC-64/ECMA of all of the above, 8 bytes big-endian
//
// Restore spools the stream to a file (WithSpoolDir), checking its framing
// and checksum, before any engine is touched: a damaged stream returns
// ErrBadSnapshot and keeps the old state (version 1 streams, without the
// replicated clock, are still read: format.go). Each storage in the snapshot is
// then restored by its engine (built, then swapped in); a configured storage
// the snapshot lacks is cleared at the snapshot's index; a section for a
// storage not configured here is skipped with a warning. AppliedIndex
// becomes the snapshot's index and waiters are woken. Each engine's own
// applied index comes from its section (boltdb stores it in the file), which
// keeps replay skipping correct after a restore.
//
// # Backups
//
// A backup is a snapshot stream taken out of the cluster. VerifySnapshot
// checks one without restoring it; Reindex rewrites the header's index (and
// the checksum) so that a backup restored into another cluster through
// raft.Restore carries the index raft assigns it there. Package
// fsm/backupfile is the file the CLI keeps one in.
//
// # Metrics
//
// SetObserver installs an Observer told about every applied batch, the
// leader-append-to-apply latency of every command entry, and each snapshot
// persisted and restored.
package fsm
