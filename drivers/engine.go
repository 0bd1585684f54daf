package drivers

import "io"

// OpKind names a state change.
type OpKind uint8

// The write operations an Engine applies. Values are part of the event log
// encoding: never renumber.
const (
	OpSet OpKind = iota + 1
	OpMExpire
	OpDelete
	OpClear
	// OpExpire removes the keys in Items whose stored deadline still equals
	// Items[i].Deadline (compare-and-delete), so a key that was re-set after
	// the sweeper saw it survives.
	OpExpire
	// OpEvict removes the keys in Victims that still hold what the leader
	// saw when it chose them (compare-and-delete on deadline and value
	// digest), to make room under the storage's Limits; Reason says why.
	OpEvict
	// OpLimit sets the storage's Limits (Op.Limits). It fails, changing
	// nothing, when the storage already holds more than the new limits
	// allow: the leader evicts down first, so the bound holds at every
	// applied index.
	OpLimit
)

// OpKind value 0x40 is reserved: it marks a batch entry in the event log
// (log.BatchOp), never an engine's op.

// OpTick carries only Now: the leader proposes it to advance the cluster's
// replicated clock (fsm.FSM.Clock) when no write has done so lately, so
// linearizable reads judge expiry by a time that never goes backwards. The
// FSM consumes it; engines never see it. Its value has the event log's
// ignorable bit (0x80) set: a replica that does not know it may skip it.
const OpTick OpKind = 0x81

// String returns the operation's name, as used in logs and metrics.
func (k OpKind) String() string {
	switch k {
	case OpSet:
		return "set"
	case OpMExpire:
		return "mexpire"
	case OpDelete:
		return "delete"
	case OpClear:
		return "clear"
	case OpExpire:
		return "expire"
	case OpEvict:
		return "evict"
	case OpLimit:
		return "limit"
	case OpTick:
		return "tick"
	default:
		return "unknown"
	}
}

// Op is one write: everything an Engine needs to apply it deterministically.
type Op struct {
	Kind OpKind
	// Now is the clock the write is applied at (Unix nanoseconds), chosen
	// once by whoever proposes it. An Engine never reads the clock itself.
	Now int64
	// Items for OpSet and OpMExpire (key, value, timeout, deadline) and
	// OpExpire (key and the deadline it was seen with).
	Items []Item
	// Keys for OpDelete.
	Keys []string
	// Victims, Reason and Seq for OpEvict. Seq numbers the evictions of
	// one planner in log order (see Planner): an engine remembers the
	// last it applied, so the planner knows which room is already free.
	Victims []Victim
	Reason  Reason
	Seq     uint64
	// Limits for OpLimit.
	Limits Limits
}

// Engine is a passive, deterministic storage that can be replicated: the
// memory and boltdb drivers. It never reads the wall clock, never starts a
// goroutine or timer, and given the same Ops in the same order reaches the
// same state (and the same Hash) on every node.
//
// Implementations must be safe for concurrent use: reads may run
// concurrently with Apply and with each other.
type Engine interface {
	// Has, MGet and TTL read as of now (Unix nanoseconds): keys whose
	// deadline is not after now are treated as missing.
	Has(now int64, keys []string) ([]string, error)
	MGet(now int64, keys []string) ([]Item, error)
	TTL(now int64, keys []string) ([]Item, error)

	// Apply applies ops in order. Each op is validated whole and applied
	// atomically: errs[i] != nil means op i changed nothing. A storage that
	// persists (boltdb) commits the whole batch in one transaction with one
	// fsync before Apply returns, and stores index with it, so that
	// AppliedIndex survives a crash together with the data. index is the raft
	// log index of the last op (0 when not replicated).
	// A non-nil err means the batch as a whole failed (I/O) and nothing was
	// applied.
	Apply(index uint64, ops []Op) (errs []error, err error)

	// AppliedIndex is the index passed to the last successful Apply, read
	// back from storage after a restart.
	AppliedIndex() uint64

	// Expired returns up to limit keys whose deadline is not after now,
	// earliest first, with Deadline set, ready for an OpExpire.
	Expired(now int64, limit int) ([]Item, error)

	// Snapshot captures a point-in-time view cheaply; the returned Snapshot
	// is written out later, concurrently with Apply.
	Snapshot() (Snapshot, error)
	// Restore replaces the whole state with a stream written by
	// Snapshot.WriteTo, building the new state before swapping it in: on
	// error the old state is kept.
	Restore(r io.Reader) error

	// Hash is a digest of the logical state (every key with its value,
	// timeout and deadline, plus nothing node-specific): equal on every node
	// that applied the same ops.
	Hash() ([]byte, error)
	// Stats reports the number of keys (expired but unswept included), the
	// bytes of keys and values held, and the limits in force.
	Stats() Stats

	// Close releases the engine (closes files).
	Close() error
}

// Snapshot is a point-in-time view of an Engine.
type Snapshot interface {
	// WriteTo streams the state in the engine's own format.
	WriteTo(w io.Writer) (int64, error)
	// Release frees the view; it is called exactly once.
	Release()
}

// Stats is a cheap summary of an Engine's contents.
type Stats struct {
	Keys  int64
	Bytes int64
	// Usage is what max_memory is compared with (see EntryUsage).
	Usage int64
	// Limits are the limits in force (zero: none).
	Limits Limits
	// Evicted counts the keys this node's engine removed by OpEvict, and
	// Rejected the writes it refused with ErrFull, since it started.
	Evicted, Rejected int64
}

// Syncer is a persistent engine that may commit without fsync
// (Env.Unsynced): Sync makes everything applied so far durable. A cluster
// node calls it once raft has stopped, before it records a clean stop.
type Syncer interface {
	Sync() error
}
