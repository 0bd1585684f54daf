package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The client half of the peer protocol (peer.go): one multiplexed net/rpc
// client per address, typed calls, and the decoding of results back into
// the package's errors.

// peerClients keeps one net/rpc client per peer address this node calls
// (the leader, mostly: a handful), and the queue of writes batched to each
// (batch.go).
type peerClients struct {
	m  *mux
	mu sync.Mutex
	// clients holds one entry per address, created by the first caller,
	// who dials outside the lock: a dial to an unreachable address (an old
	// leader) must not hold up calls to any other.
	clients  map[string]*peerConn
	bmu      sync.Mutex
	batchers map[string]*batcher
	// closed refuses new connections once the node closes, so writes
	// still queued in a batcher are not sent after Close.
	closed bool
}

// peerConn is one address's connection, or the dial that will make it.
type peerConn struct {
	ready chan struct{} // closed once c or err is set
	c     *rpc.Client
	err   error
	// closing is set before this node closes c. net/rpc fails a call with
	// ErrShutdown both when the client was already shut down at send
	// (nothing sent) and when it is closed while the call is pending (sent):
	// only this flag tells the two apart.
	closing atomic.Bool
}

func newPeerClients(m *mux) *peerClients {
	return &peerClients{m: m, clients: map[string]*peerConn{}, batchers: map[string]*batcher{}}
}

func (pc *peerClients) get(ctx context.Context, addr string) (*peerConn, error) {
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return nil, rpc.ErrShutdown
	}
	w, ok := pc.clients[addr]
	if !ok {
		w = &peerConn{ready: make(chan struct{})}
		pc.clients[addr] = w
	}
	pc.mu.Unlock()
	if ok {
		select {
		case <-w.ready:
			if w.err != nil {
				return nil, w.err
			}
			return w, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	conn, err := pc.m.dial(addr, protoForward, remaining(ctx, 5*time.Second))
	pc.mu.Lock()
	if err == nil && pc.closed {
		_ = conn.Close()
		err = rpc.ErrShutdown
	}
	if err != nil {
		// The next caller dials again; those waiting share this failure.
		if pc.clients[addr] == w {
			delete(pc.clients, addr)
		}
	} else {
		w.c = rpc.NewClient(conn)
	}
	w.err = err
	close(w.ready)
	pc.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return w, nil
}

// drop forgets w's connection and closes it.
func (pc *peerClients) drop(addr string, w *peerConn) {
	pc.mu.Lock()
	if pc.clients[addr] == w {
		delete(pc.clients, addr)
	}
	pc.mu.Unlock()
	w.close()
}

func (w *peerConn) close() {
	w.closing.Store(true)
	_ = w.c.Close()
}

func (pc *peerClients) closeAll() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.closed = true
	for addr, w := range pc.clients {
		select {
		case <-w.ready:
			if w.c != nil {
				w.close()
			}
		default: // its dialer sees closed and closes the connection
		}
		delete(pc.clients, addr)
	}
}

// call invokes method on the peer at addr. sent reports whether the
// request may have reached the peer: a refused dial or a connection
// already known broken did not send anything.
func (pc *peerClients) call(ctx context.Context, addr, method string, args, reply any) (sent bool, err error) {
	w, err := pc.get(ctx, addr)
	if err != nil {
		return false, err
	}
	closedBefore := w.closing.Load()
	call := w.c.Go(peerService+"."+method, args, reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
	case <-ctx.Done():
		return true, ctx.Err()
	}
	var se rpc.ServerError
	switch {
	case call.Error == nil:
		return true, nil
	case errors.As(call.Error, &se):
		// The peer answered with an error: the connection is fine.
		return true, fmt.Errorf("%s %s: %w", method, addr, call.Error)
	case errors.Is(call.Error, rpc.ErrShutdown) && (closedBefore || !w.closing.Load()):
		// Refused at send: closed by this node before the call began, or
		// shut down by a broken connection (which fails pending calls with
		// the connection's own error, never ErrShutdown).
		pc.drop(addr, w)
		return false, call.Error
	default:
		pc.drop(addr, w)
		return true, fmt.Errorf("%s %s: %w", method, addr, call.Error)
	}
}

// isUnknownMethod reports net/rpc's refusal of a method the peer does not
// have (an older version): it answers before running anything.
func isUnknownMethod(err error) bool {
	var se rpc.ServerError
	return errors.As(err, &se) && strings.Contains(string(se), "can't find method")
}

// The typed calls. Each decodes into a reply of its own and returns it
// only when the call completed: a call given up on (its context ended)
// may still have its reply decoded later by net/rpc, into memory no
// caller may read.

// callFor makes one call and returns its reply; the zero R when it failed.
func callFor[R any](ctx context.Context, pc *peerClients, addr, method string, args any) (R, bool, error) {
	reply := new(R)
	sent, err := pc.call(ctx, addr, method, args, reply)
	if err != nil {
		var zero R
		return zero, sent, err
	}
	return *reply, sent, nil
}

func (pc *peerClients) propose(ctx context.Context, addr string, args ProposeArgs) (ProposeReply, bool, error) {
	return callFor[ProposeReply](ctx, pc, addr, "Propose", args)
}

func (pc *peerClients) applyBatch(ctx context.Context, addr string, args ApplyBatchArgs) (ApplyBatchReply, bool, error) {
	return callFor[ApplyBatchReply](ctx, pc, addr, "ApplyBatch", args)
}

func (pc *peerClients) readIndex(ctx context.Context, addr string, timeout time.Duration) (ReadIndexReply, error) {
	reply, _, err := callFor[ReadIndexReply](ctx, pc, addr, "ReadIndex", ReadIndexArgs{Timeout: timeout})
	return reply, err
}

func (pc *peerClients) nudge(ctx context.Context, addr string, index uint64) error {
	_, _, err := callFor[NudgeReply](ctx, pc, addr, "Nudge", NudgeArgs{Index: index})
	return err
}

func (pc *peerClients) ping(ctx context.Context, addr string) (PingReply, error) {
	reply, _, err := callFor[PingReply](ctx, pc, addr, "Ping", PingArgs{})
	return reply, err
}

func (pc *peerClients) join(ctx context.Context, addr string, args JoinArgs) (Result, error) {
	reply, _, err := callFor[Result](ctx, pc, addr, "Join", args)
	return reply, err
}

func (pc *peerClients) remove(ctx context.Context, addr string, args RemoveArgs) (Result, error) {
	reply, _, err := callFor[Result](ctx, pc, addr, "Remove", args)
	return reply, err
}

func (pc *peerClients) watch(ctx context.Context, addr string) (WatchReply, bool, error) {
	return callFor[WatchReply](ctx, pc, addr, "Watch", WatchArgs{})
}

func (pc *peerClients) hints(ctx context.Context, addr string, keys map[string][]string) error {
	_, _, err := callFor[HintsReply](ctx, pc, addr, "Hints", HintsArgs{Keys: keys})
	return err
}

// outcomeOf decodes the result of a write the peer at addr committed (or
// not): the index, the error, and whether nothing was applied.
func outcomeOf(addr string, r Result) outcome {
	switch r.Code {
	case codeOK:
		return outcome{idx: r.Index}
	case codeRetry:
		return outcome{retry: true}
	case codeUnknown:
		return outcome{err: fmt.Errorf("%w (leader %s: %s)", ErrOutcomeUnknown, DialAddr(addr), r.Text)}
	default:
		return outcome{idx: r.Index, err: remoteError(r)}
	}
}

// remoteError rebuilds a refusal: its text, wrapping the sentinel its Kind
// names, so errors.Is works as on the node that refused.
func remoteError(r Result) error {
	for _, w := range wireErrors {
		if w.kind == r.Kind {
			return &peerError{text: r.Text, sentinel: w.err}
		}
	}
	return &peerError{text: r.Text}
}

// peerError is a refusal another node sent: its text, and the sentinel
// error it wrapped there, if it was one of wireErrors.
type peerError struct {
	text     string
	sentinel error
}

func (e *peerError) Error() string { return e.text }
func (e *peerError) Unwrap() error { return e.sentinel }
