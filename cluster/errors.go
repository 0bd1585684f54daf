package cluster

import "errors"

var (
	// ErrNoLeader means the cluster has no reachable leader: the write was
	// not applied and may be retried.
	ErrNoLeader = errors.New("no leader: write not applied, retry")
	// ErrOutcomeUnknown means the write was proposed but leadership was lost
	// or the deadline passed before it was known to commit: it may or may
	// not be applied.
	ErrOutcomeUnknown = errors.New("outcome unknown: leadership lost or timed out during commit, the write may or may not be applied")
	// ErrNotLinearizable means a linearizable read could not confirm the
	// leader's commit index in time: nothing was read.
	ErrNotLinearizable = errors.New("no leader: linearizable read could not be confirmed, retry")
	// ErrShutdown is returned after the node has been closed.
	ErrShutdown = errors.New("node is shutting down")
	// ErrConfig wraps configuration problems.
	ErrConfig = errors.New("invalid cluster config")
)
