package drivers

import "errors"

var (
	// ErrEmptyKey is returned for a key that is empty or only white space.
	ErrEmptyKey = errors.New("key can't be empty string")
	// ErrNoKeys is returned when a call that needs keys has none.
	ErrNoKeys = errors.New("no keys provided")
	// ErrClosed is returned by a storage after Close.
	ErrClosed = errors.New("storage closed")
	// ErrUnknownOp is returned by an Engine for an Op kind it does not know.
	ErrUnknownOp = errors.New("unknown operation")
	// ErrNotSupported is returned for a call a driver cannot serve (memcached TTL).
	ErrNotSupported = errors.New("not supported by this driver")
	// ErrFull is returned for a write that would take a storage past its
	// max_memory or max_keys: the write changed nothing.
	ErrFull = errors.New("storage full")
	// ErrBadLimit is a max_memory, max_keys or eviction setting that cannot
	// be used.
	ErrBadLimit = errors.New("bad storage limit")
)
