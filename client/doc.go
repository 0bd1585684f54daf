// Package client is a typed Go client for kvnode and for RoadRunner's KV
// plugin. It speaks the same wire protocol as the PHP client
// (spiral/roadrunner-kv): Go's net/rpc over goridge v3 frames, service "kv",
// protobuf messages kv.v1.
//
// A Client keeps a small pool of connections. Requests are spread over the
// pool round-robin, and several requests may be in flight on one connection
// at once: net/rpc matches replies to requests by sequence id.
//
// # Errors and outcomes
//
// Every method returns one of three kinds of error, and the difference
// matters to anyone checking histories (jepsen):
//
//   - *ServerError: the server answered and refused the call (no such
//     storage, blank key, bad timeout, ...). kvnode validates a call whole
//     before applying it, so a write that fails this way changed nothing.
//     (A replicated server that loses leadership while applying a write
//     can only say so in the text; IsUnknownOutcome does not read texts.
//     IsNoLeader does: it picks out a cluster node's "no leader: ...,
//     retry", which did nothing and may be sent again, to any node.)
//   - ErrClosed, or an error wrapping ErrDial: the request was never sent, so
//     it definitely did not happen.
//   - An error wrapping ErrUnknownOutcome: the request was sent (or may have
//     been), but no answer came back, because the connection broke or the
//     context expired first. A write that fails this way may or may not have
//     been applied; a later read is the only way to know.
//
// A context deadline is honoured by abandoning the call, not by cancelling it
// on the server: net/rpc has no cancellation. The connection is kept, and the
// late reply is discarded when it arrives; if no reply at all arrives within
// the abandon grace period (WithAbandonGrace), the connection is presumed
// dead, closed, and replaced on next use.
package client
