package harness

import "errors"

var (
	// ErrUnsupported is returned by a Cluster that cannot inject a fault
	// (local processes cannot be partitioned); the nemesis skips it.
	ErrUnsupported = errors.New("harness: fault not supported by this cluster")
	// ErrNotReady is returned when a node or the cluster does not become
	// ready within its deadline.
	ErrNotReady = errors.New("harness: cluster not ready")
	// ErrNoLeader is returned when no node can be identified as the leader.
	ErrNoLeader = errors.New("harness: no leader found")
	// ErrDocker wraps a failed docker or docker-compose command.
	ErrDocker = errors.New("harness: docker command failed")
)
