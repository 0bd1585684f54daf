package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"sync"
	"sync/atomic"
	"time"

	eventlog "github.com/kvnode/kvnode/log"
)

// forwardService is the net/rpc service name followers call on the leader.
const forwardService = "Cluster"

// Reply codes of the forwarding channel: they carry which of the package's
// error classes the leader met, so the follower returns the same one.
const (
	codeOK      uint8 = iota
	codeRetry         // not leader (any more) or not enqueued: nothing applied
	codeUnknown       // proposed, outcome unknown
	codeApply         // applied, and the state machine refused it (Text)
)

// ApplyArgs is a write forwarded to the leader.
type ApplyArgs struct {
	Event eventlog.Event
	// Timeout is the follower's remaining budget.
	Timeout time.Duration
}

// ApplyReply tells the follower the log index to wait for.
type ApplyReply struct {
	Code  uint8
	Text  string
	Index uint64
}

// ReadIndexArgs asks the leader for a commit index that covers every write
// acknowledged so far.
type ReadIndexArgs struct{ Timeout time.Duration }

// ReadIndexReply carries that index.
type ReadIndexReply struct {
	Code  uint8
	Index uint64
}

// forwarder is the leader side of the forwarding channel.
type forwarder struct{ n *Node }

// Apply proposes a follower's write if this node leads. Followers send
// ApplyBatch now; Apply serves older ones during a rolling restart.
func (f *forwarder) Apply(args ApplyArgs, reply *ApplyReply) error {
	ctx, cancel := context.WithTimeout(context.Background(), min(args.Timeout, f.n.cfg.ApplyTimeout))
	defer cancel()
	*reply = replyFor(f.n.applyLeader(ctx, args.Event))
	return nil
}

// replyFor encodes applyLeader's outcome for the follower.
func replyFor(idx uint64, err error, retry bool) ApplyReply {
	reply := ApplyReply{Index: idx}
	switch {
	case retry:
		reply.Code = codeRetry
	case errors.Is(err, ErrOutcomeUnknown), errors.Is(err, ErrShutdown):
		reply.Code, reply.Text = codeUnknown, err.Error()
	case err != nil:
		reply.Code, reply.Text = codeApply, err.Error()
	}
	return reply
}

// ReadIndex confirms leadership and returns the commit index.
func (f *forwarder) ReadIndex(args ReadIndexArgs, reply *ReadIndexReply) error {
	ctx, cancel := context.WithTimeout(context.Background(), min(args.Timeout, f.n.cfg.ApplyTimeout))
	defer cancel()
	// Reads forwarded by every follower share the leader's rounds too.
	idx, addr, ok := f.n.readIndexOnce(ctx)
	if !ok || addr != "" { // addr != "": this node no longer leads
		reply.Code = codeRetry
		return nil
	}
	reply.Index = idx
	return nil
}

// forwardClients keeps one multiplexed net/rpc client per leader address,
// and the queue of writes batched to it (one per leader this node has
// forwarded to: a handful).
type forwardClients struct {
	m  *mux
	mu sync.Mutex
	// clients holds one entry per address, created by the first caller,
	// who dials outside the lock: a dial to an unreachable address (an old
	// leader) must not hold up calls to any other.
	clients  map[string]*fwdClient
	bmu      sync.Mutex
	batchers map[string]*batcher
	// closed refuses new connections once the node closes, so writes
	// still queued in a batcher are not sent after Close.
	closed bool
}

// fwdClient is one address's connection, or the dial that will make it.
type fwdClient struct {
	ready chan struct{} // closed once c or err is set
	c     *rpc.Client
	err   error
	// closing is set before this node closes c. net/rpc fails a call with
	// ErrShutdown both when the client was already shut down at send
	// (nothing sent) and when it is closed while the call is pending (sent):
	// only this flag tells the two apart.
	closing atomic.Bool
}

func newForwardClients(m *mux) *forwardClients {
	return &forwardClients{m: m, clients: map[string]*fwdClient{}, batchers: map[string]*batcher{}}
}

func (fc *forwardClients) get(ctx context.Context, addr string) (*fwdClient, error) {
	fc.mu.Lock()
	if fc.closed {
		fc.mu.Unlock()
		return nil, rpc.ErrShutdown
	}
	w, ok := fc.clients[addr]
	if !ok {
		w = &fwdClient{ready: make(chan struct{})}
		fc.clients[addr] = w
	}
	fc.mu.Unlock()
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
	conn, err := fc.m.dial(addr, protoForward, remaining(ctx, 5*time.Second))
	fc.mu.Lock()
	if err == nil && fc.closed {
		_ = conn.Close()
		err = rpc.ErrShutdown
	}
	if err != nil {
		// The next caller dials again; those waiting share this failure.
		if fc.clients[addr] == w {
			delete(fc.clients, addr)
		}
	} else {
		w.c = rpc.NewClient(conn)
	}
	w.err = err
	close(w.ready)
	fc.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return w, nil
}

// drop forgets w's connection and closes it.
func (fc *forwardClients) drop(addr string, w *fwdClient) {
	fc.mu.Lock()
	if fc.clients[addr] == w {
		delete(fc.clients, addr)
	}
	fc.mu.Unlock()
	w.close()
}

func (w *fwdClient) close() {
	w.closing.Store(true)
	_ = w.c.Close()
}

func (fc *forwardClients) closeAll() {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.closed = true
	for addr, w := range fc.clients {
		select {
		case <-w.ready:
			if w.c != nil {
				w.close()
			}
		default: // its dialer sees closed and closes the connection
		}
		delete(fc.clients, addr)
	}
}

// call invokes method on the leader at addr. sent reports whether the
// request may have reached the leader: a refused dial or a connection
// already known broken did not send anything.
func (fc *forwardClients) call(ctx context.Context, addr, method string, args, reply any) (sent bool, err error) {
	w, err := fc.get(ctx, addr)
	if err != nil {
		return false, err
	}
	closedBefore := w.closing.Load()
	call := w.c.Go(forwardService+"."+method, args, reply, make(chan *rpc.Call, 1))
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
		// The leader answered with an error: the connection is fine.
		return true, fmt.Errorf("forward to %s: %w", addr, call.Error)
	case errors.Is(call.Error, rpc.ErrShutdown) && (closedBefore || !w.closing.Load()):
		// Refused at send: closed by this node before the call began, or
		// shut down by a broken connection (which fails pending calls with
		// the connection's own error, never ErrShutdown).
		fc.drop(addr, w)
		return false, call.Error
	default:
		fc.drop(addr, w)
		return true, fmt.Errorf("forward to %s: %w", addr, call.Error)
	}
}
