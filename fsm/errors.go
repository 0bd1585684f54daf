package fsm

import "errors"

var (
	// ErrUnknownStorage is put in Result.Err for an event that names a
	// storage this FSM does not replicate. Every replica configured alike
	// returns the same, and the log entry changes nothing.
	ErrUnknownStorage = errors.New("unknown replicated storage")
	// ErrBadSnapshot is returned by Restore for a stream that is not a
	// complete snapshot written by this package (bad magic or version,
	// malformed framing, checksum mismatch, trailing bytes). Nothing was
	// changed.
	ErrBadSnapshot = errors.New("invalid fsm snapshot")
	// ErrApplyFailed is wrapped by the value ApplyBatch panics with when an
	// engine fails a committed batch as a whole (an I/O error such as a full
	// disk): the replica can no longer follow the log and must stop.
	ErrApplyFailed = errors.New("engine failed to apply committed entries")
)
