package cluster

import (
	"errors"
	"fmt"
	"net/rpc"
)

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
	// ErrNotApplied means a read found this node behind a write it had
	// acknowledged and could not catch up in time: nothing was read.
	ErrNotApplied = errors.New("not applied yet: read-your-writes could not be kept on this node, retry")
	// ErrShutdown is returned after the node has been closed.
	ErrShutdown = errors.New("node is shutting down")
	// ErrConfig wraps configuration problems.
	ErrConfig = errors.New("invalid cluster config")
	// ErrWrongIncarnation is a cluster port that answered for another
	// incarnation of the node dialled: that node lost its data dir and
	// restarted, and is a new member now. Nothing was sent.
	ErrWrongIncarnation = errors.New("the node at that address is another incarnation")
	// ErrLastVoter refuses to remove the only voter of a cluster.
	ErrLastVoter = errors.New("refusing to remove the last voter")

	// errNoPeerCert is a TLS handshake where the peer showed no certificate.
	errNoPeerCert = errors.New("peer presented no certificate")
	// errNoTLSAck is a TLS listener that closed instead of accepting.
	errNoTLSAck = errors.New("listener did not accept the certificate")
	// errNotMember is a cluster port that answered with another node's id.
	errNotMember = errors.New("cluster port answered as another node")
	// errNoAddress is a host name that resolved to nothing.
	errNoAddress = errors.New("no address")
	// errNoSeedAnswered is a join where only this node itself answered.
	errNoSeedAnswered = errors.New("no other member answered")
	// errRetired refuses a request on a forwarding connection idle long
	// enough for the listener to be closing it (retiringConn). It is an
	// rpc.ErrShutdown, which peerClients reads as "nothing was sent":
	// the caller drops the client and retries on a new connection.
	errRetired = fmt.Errorf("forwarding connection idle too long, redialling: %w", rpc.ErrShutdown)
)
