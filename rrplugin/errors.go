package rrplugin

import (
	"context"
	"errors"
	"strings"

	"github.com/kvnode/kvnode/client"
)

var (
	// ErrConfig wraps problems of the kvnode section or of a storage's
	// config; RoadRunner refuses to start with them.
	ErrConfig = errors.New("kvnode: bad configuration")
)

// nodeError is a failure that reached, or tried to reach, one node. Its
// text names the node, for operators; a server's refusal is shown by its
// text alone (the PHP client looks in it for "no such storage" and
// "_plugin_ttl"), anything else as the client said it.
type nodeError struct {
	addr string
	err  error
}

func (e *nodeError) Error() string {
	var se *client.ServerError
	if errors.As(e.err, &se) {
		return "node " + e.addr + ": " + se.Text
	}
	return "node " + e.addr + ": " + e.err.Error()
}

func (e *nodeError) Unwrap() error { return e.err }

// didNothing reports whether a call provably had no effect anywhere, so it
// may be sent again to another node: it never left (dial refused, pool
// closed before sending), or a node refused it for want of a leader. Any
// other failure after sending, a deadline included, may have applied a
// write: it goes back to PHP as it is, never sent twice.
func didNothing(err error) bool {
	return errors.Is(err, client.ErrDial) || client.IsNoLeader(err)
}

// Error kinds in the errors metric.
const (
	kindBadRequest     = "bad_request"     // refused here, before any node was asked
	kindNoSuchStorage  = "no_such_storage" // the cluster has no storage of that name
	kindRefused        = "refused"         // any other refusal by the node
	kindNoLeader       = "no_leader"       // every node tried knew no leader
	kindUnreachable    = "unreachable"     // no node could be connected to
	kindOutcomeUnknown = "outcome_unknown" // sent; the connection broke or the node said so
	kindTimeout        = "timeout"         // sent; no answer within the call's timeout
	kindClosed         = "closed"          // the storage was stopped
)

// errorKind names err for the errors metric.
func errorKind(err error) string {
	var se *client.ServerError
	switch {
	case errors.Is(err, client.ErrClosed):
		return kindClosed
	case errors.Is(err, client.ErrDial):
		return kindUnreachable
	case client.IsNoLeader(err):
		return kindNoLeader
	case client.IsNoSuchStorage(err):
		return kindNoSuchStorage
	case errors.As(err, &se):
		if strings.Contains(se.Text, "outcome unknown") {
			return kindOutcomeUnknown
		}
		return kindRefused
	case client.IsUnknownOutcome(err) && errors.Is(err, context.DeadlineExceeded):
		return kindTimeout
	case client.IsUnknownOutcome(err):
		return kindOutcomeUnknown
	default:
		return kindRefused
	}
}
