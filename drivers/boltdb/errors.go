package boltdb

import "errors"

var (
	// ErrConfig is wrapped by every problem Config.Validate reports.
	ErrConfig = errors.New("invalid boltdb config")
	// ErrLocked is returned by Open when another process (or another Engine in
	// this one) holds the file and did not release it within the lock timeout.
	ErrLocked = errors.New("database file is locked by another process")
	// ErrNotBolt is returned by Open and Restore for a file that is not a
	// bbolt database (or one too damaged to open).
	ErrNotBolt = errors.New("not a bolt database")
	// ErrInvalidItem is returned, per op, for an item the file cannot hold:
	// a key or value beyond bbolt's limits, or a negative deadline.
	ErrInvalidItem = errors.New("invalid item")
	// ErrCorrupt is returned when a record in the file does not have the
	// shape this package writes (for example a value that is not gob bytes).
	ErrCorrupt = errors.New("corrupt record")
	// ErrBadSnapshot is returned by Restore for a stream that is not a
	// complete, consistent snapshot of this engine; the old state is kept.
	ErrBadSnapshot = errors.New("invalid snapshot")
)
