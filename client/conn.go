package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goridgerpc "github.com/roadrunner-server/goridge/v3/pkg/rpc"
)

// ParseAddr splits a kvnode RPC address into the network and address that
// net.Dial takes. It accepts "tcp://host:port", "unix:///path/to.sock" (the
// forms RoadRunner's rpc.listen uses) and a bare "host:port".
func ParseAddr(addr string) (network, address string, err error) {
	scheme, rest, ok := strings.Cut(addr, "://")
	if !ok {
		scheme, rest = "tcp", addr
	}
	switch scheme {
	case "tcp", "tcp4", "tcp6":
		if _, _, err := net.SplitHostPort(rest); err != nil {
			return "", "", fmt.Errorf("%w %q: %w", ErrBadAddress, addr, err)
		}
	case "unix":
		if rest == "" {
			return "", "", fmt.Errorf("%w %q: empty socket path", ErrBadAddress, addr)
		}
	default:
		return "", "", fmt.Errorf("%w %q: unknown scheme %q", ErrBadAddress, addr, scheme)
	}
	return scheme, rest, nil
}

// conn is one goridge connection carrying concurrent net/rpc calls.
type conn struct {
	rpc      *rpc.Client
	broken   atomic.Bool
	once     sync.Once
	watchers *watchers
	grace    time.Duration
}

func dialConn(ctx context.Context, dial DialFunc, network, address string, w *watchers, grace time.Duration) (*conn, error) {
	nc, err := dial(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("%w %s://%s: %w", ErrDial, network, address, err)
	}
	return &conn{
		rpc:      rpc.NewClientWithCodec(goridgerpc.NewClientCodec(nc)),
		watchers: w,
		grace:    grace,
	}, nil
}

// close shuts the connection down; calls still pending on it fail with
// rpc.ErrShutdown, which their callers report as an unknown outcome.
func (c *conn) close() {
	c.broken.Store(true)
	c.once.Do(func() { _ = c.rpc.Close() })
}

// call sends one request and waits for its reply or for ctx.
func (c *conn) call(ctx context.Context, method string, args, reply any) error {
	call := c.rpc.Go(method, args, reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		return c.finish(method, call)
	case <-ctx.Done():
		select {
		case <-call.Done: // the reply won the race: report it, not the deadline
			return c.finish(method, call)
		default:
		}
		// The reply may still be decoded into reply later, by net/rpc's
		// reader goroutine: the caller must never touch it again.
		c.abandon(call)
		return fmt.Errorf("%s: %w: %w", method, ErrUnknownOutcome, context.Cause(ctx))
	}
}

// finish turns a completed call into the caller's error.
func (c *conn) finish(method string, call *rpc.Call) error {
	err := call.Error
	if err == nil {
		return nil
	}
	var se rpc.ServerError
	if errors.As(err, &se) {
		return &ServerError{Method: method, Text: string(se)}
	}
	if errors.Is(err, rpc.ErrShutdown) && !c.broken.Load() {
		// Only our own close sets net/rpc's "closing", and it marks the
		// connection broken first; so this ErrShutdown comes from send,
		// which refuses calls once the reader has stopped (the server
		// closed the idle connection): the request never left.
		c.close()
		return errNotSent
	}
	// Anything else comes from the transport: a failed write may have left
	// half a frame on the wire, and a failed read leaves net/rpc shut down,
	// so the connection is of no further use either way.
	c.close()
	return fmt.Errorf("%s: %w: %w", method, ErrUnknownOutcome, err)
}

// abandon watches a call whose caller gave up. A reply arriving within the
// grace period shows the connection is alive, and it is kept; otherwise it is
// presumed dead (a partition, a hung server) and closed, so that later calls
// get a fresh connection instead of queueing behind a dead one.
func (c *conn) abandon(call *rpc.Call) {
	if !c.watchers.add() {
		// The client is closing and closes this connection anyway.
		return
	}
	go func() {
		defer c.watchers.wg.Done()
		t := time.NewTimer(c.grace)
		defer t.Stop()
		select {
		case <-call.Done:
		case <-t.C:
			c.close()
		}
	}()
}

// watchers tracks the goroutines of abandoned calls so that Close can wait
// for them; once stopped it refuses new ones.
type watchers struct {
	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

func (w *watchers) add() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return false
	}
	w.wg.Add(1)
	return true
}

// stop refuses new watchers and waits for the running ones; they end once
// their connections are closed.
func (w *watchers) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.wg.Wait()
}
