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
// write a client makes (Set, MExpire, Delete, Clear), every removal the
// leader's sweeper decides (Expire) or makes room with (Evict) and every
// change of a storage's limits (Limit) becomes exactly one Event, carrying
// all it needs to be applied deterministically on every replica.
type Event struct {
	// Storage is the name of the storage under "kv:" in the configuration.
	Storage string
	// Op is the write. Op.Now is the proposer's clock, stamped once before
	// proposing: the only "now" a replica applying the event ever uses.
	// Item deadlines are absolute (Unix nanoseconds) and computed before
	// proposing too, so no replica parses a timeout or reads its clock.
	Op drivers.Op
}

// payload is the shape of an op's body after its clock.
type payload uint8

const (
	payloadNone payload = iota
	payloadItems
	payloadKeys
	payloadVictims
	payloadLimits
)

// shapeOf returns the payload ops of kind k carry; ok is false for a kind
// this version does not know.
func shapeOf(k drivers.OpKind) (shape payload, ok bool) {
	switch k {
	case drivers.OpSet, drivers.OpMExpire, drivers.OpExpire:
		return payloadItems, true
	case drivers.OpDelete:
		return payloadKeys, true
	case drivers.OpEvict:
		return payloadVictims, true
	case drivers.OpLimit:
		return payloadLimits, true
	case drivers.OpClear, drivers.OpTick:
		return payloadNone, true
	default:
		return payloadNone, false
	}
}
