package memory

import "errors"

var (
	// ErrKeyTooLong is returned by Apply for a key longer than 4 GiB - 1.
	ErrKeyTooLong = errors.New("memory: key too long")
	// ErrBadSnapshot is returned by Restore for a stream that is not a
	// memory snapshot, is truncated, or fails its checksum.
	ErrBadSnapshot = errors.New("memory: corrupt snapshot")
	// ErrSnapshotVersion is returned by Restore for a snapshot written by an
	// incompatible (newer) format version.
	ErrSnapshotVersion = errors.New("memory: unsupported snapshot version")
)
