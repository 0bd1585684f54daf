package client

import (
	"errors"
	"strings"
)

var (
	// ErrClosed is returned by every method after Close. The request was not
	// sent.
	ErrClosed = errors.New("client: closed")
	// ErrDial wraps a failure to connect. The request was not sent.
	ErrDial = errors.New("client: dial")
	// ErrUnknownOutcome wraps transport failures and context expiry that
	// happen after a request may have reached the server: a write that fails
	// with it may or may not have been applied.
	ErrUnknownOutcome = errors.New("client: outcome unknown")
	// ErrBadAddress is returned by Dial and ParseAddr for an address that is
	// neither host:port, tcp://host:port nor unix:///path.
	ErrBadAddress = errors.New("client: bad address")

	// errNotSent reports a pooled connection found dead before the request
	// was written; Call retries once on a fresh one.
	errNotSent = errors.New("connection closed before the request was sent")
)

// ServerError is an error the server sent back in reply to a call: the call
// reached the server and was refused. Text is the server's message verbatim,
// e.g. "rpc_mget: no such storage: ghost".
type ServerError struct {
	// Method is the RPC method called, e.g. "kv.MGet".
	Method string
	// Text is the error text from the server's reply.
	Text string
}

// Error returns the method and the server's text.
func (e *ServerError) Error() string { return e.Method + ": " + e.Text }

// IsNoSuchStorage reports whether err is a server refusal because the named
// storage does not exist (or no storage name was given). The PHP client maps
// the same texts to a StorageException.
func IsNoSuchStorage(err error) bool {
	var se *ServerError
	if !errors.As(err, &se) {
		return false
	}
	return strings.Contains(se.Text, "no such storage") || strings.Contains(se.Text, "no storage provided")
}

// IsNotSupported reports whether err is a server refusal because the storage
// cannot serve the call (memcached has no TTL) or the server does not know
// the method at all (an old RoadRunner without kv.Clear).
func IsNotSupported(err error) bool {
	var se *ServerError
	if !errors.As(err, &se) {
		return false
	}
	return strings.Contains(se.Text, "_plugin_ttl") ||
		strings.Contains(se.Text, "not supported") ||
		strings.Contains(se.Text, "can't find method")
}

// IsNoLeader reports whether err is a kvnode node's refusal because it knew
// no leader: "no leader: write not applied, retry" or "no leader:
// linearizable read could not be confirmed, retry". Such a call did nothing
// (nothing was proposed, nothing read), so sending it again, to this node or
// another, cannot apply a write twice. A text that also says "outcome
// unknown" is never taken for one.
func IsNoLeader(err error) bool {
	var se *ServerError
	if !errors.As(err, &se) {
		return false
	}
	return strings.Contains(se.Text, "no leader: ") && strings.Contains(se.Text, ", retry") &&
		!strings.Contains(se.Text, "outcome unknown")
}

// IsUnknownOutcome reports whether the call may or may not have been applied
// by the server: the connection broke or the context expired after the
// request was sent.
func IsUnknownOutcome(err error) bool { return errors.Is(err, ErrUnknownOutcome) }
