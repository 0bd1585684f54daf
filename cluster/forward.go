package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"sync"
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
	m       *mux
	mu      sync.Mutex
	clients map[string]*rpc.Client
	// bmu guards batchers apart from mu, which is held while dialling.
	bmu      sync.Mutex
	batchers map[string]*batcher
	// closed refuses new connections once the node closes, so writes
	// still queued in a batcher are not sent after Close.
	closed bool
}

func newForwardClients(m *mux) *forwardClients {
	return &forwardClients{m: m, clients: map[string]*rpc.Client{}, batchers: map[string]*batcher{}}
}

func (fc *forwardClients) get(ctx context.Context, addr string) (*rpc.Client, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.closed {
		return nil, rpc.ErrShutdown
	}
	if c, ok := fc.clients[addr]; ok {
		return c, nil
	}
	conn, err := fc.m.dial(addr, protoForward, remaining(ctx, 5*time.Second))
	if err != nil {
		return nil, err
	}
	c := rpc.NewClient(conn)
	fc.clients[addr] = c
	return c, nil
}

func (fc *forwardClients) drop(addr string, c *rpc.Client) {
	fc.mu.Lock()
	if fc.clients[addr] == c {
		delete(fc.clients, addr)
	}
	fc.mu.Unlock()
	_ = c.Close()
}

func (fc *forwardClients) closeAll() {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.closed = true
	for addr, c := range fc.clients {
		_ = c.Close()
		delete(fc.clients, addr)
	}
}

// call invokes method on the leader at addr. sent reports whether the
// request may have reached the leader: a refused dial or a connection
// already known broken did not send anything.
func (fc *forwardClients) call(ctx context.Context, addr, method string, args, reply any) (sent bool, err error) {
	c, err := fc.get(ctx, addr)
	if err != nil {
		return false, err
	}
	call := c.Go(forwardService+"."+method, args, reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		if call.Error == nil {
			return true, nil
		}
		fc.drop(addr, c)
		if errors.Is(call.Error, rpc.ErrShutdown) {
			return false, call.Error
		}
		return true, fmt.Errorf("forward to %s: %w", addr, call.Error)
	case <-ctx.Done():
		return true, ctx.Err()
	}
}
