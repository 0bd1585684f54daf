package log

import "errors"

var (
	// ErrCorrupt is wrapped by Decode for an entry it cannot trust: an
	// unknown version, an unknown operation without the ignorable bit, or a
	// truncated or malformed body. A replica that meets one must stop rather
	// than guess, or it would diverge from the others.
	ErrCorrupt = errors.New("corrupt event")
	// ErrIgnorable is returned by Decode for an operation this version does
	// not know but whose writer marked it safe to skip (IgnorableBit), so
	// that an older replica can follow a log written by a newer leader.
	ErrIgnorable = errors.New("unknown ignorable event")
	// ErrInvalidEvent is wrapped by Encode for an event it refuses to write:
	// an unknown operation, or fields the operation does not carry (Keys on a
	// Set, Items on a Delete, anything on a Clear).
	ErrInvalidEvent = errors.New("invalid event")
	// ErrStoreConfig is wrapped by OpenStores for options that do not go
	// together.
	ErrStoreConfig = errors.New("invalid raft store options")
)
