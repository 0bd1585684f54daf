package log

import "github.com/kvnode/kvnode/drivers"

// Version is the encoding version written as the first byte of every event.
const Version = 1

// IgnorableBit, set in an operation byte, marks an operation that a replica
// which does not know it may skip without diverging. Every operation known
// today is below it; an operation added later whose effect older replicas can
// safely miss is numbered at or above it.
const IgnorableBit = 0x80

// Event is one entry of the event log: a single write to one storage. Every
// write a client makes (Set, MExpire, Delete, Clear) and every removal the
// leader's sweeper decides (Expire) becomes exactly one Event, carrying all
// it needs to be applied deterministically on every replica.
type Event struct {
	// Storage is the name of the storage under "kv:" in the configuration.
	Storage string
	// Op is the write. Op.Now is the proposer's clock, stamped once before
	// proposing: the only "now" a replica applying the event ever uses.
	// Item deadlines are absolute (Unix nanoseconds) and computed before
	// proposing too, so no replica parses a timeout or reads its clock.
	Op drivers.Op
}

// fields reports whether ops of kind k carry Items, and whether they carry
// Keys; ok is false for a kind this version does not know.
func fields(k drivers.OpKind) (items, keys, ok bool) {
	switch k {
	case drivers.OpSet, drivers.OpMExpire, drivers.OpExpire:
		return true, false, true
	case drivers.OpDelete:
		return false, true, true
	case drivers.OpClear, drivers.OpTick:
		return false, false, true
	default:
		return false, false, false
	}
}
