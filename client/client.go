package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DialFunc opens one connection; net.Dialer.DialContext fits. Tests and
// fault injection can wrap it.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Defaults for the options.
const (
	DefaultPoolSize     = 4
	DefaultAbandonGrace = 5 * time.Second
	defaultDialTimeout  = 5 * time.Second
)

type options struct {
	poolSize int
	dial     DialFunc
	grace    time.Duration
}

// Option configures Dial.
type Option func(*options)

// WithPoolSize sets the number of connections (default DefaultPoolSize).
// Values below 1 are raised to 1.
func WithPoolSize(n int) Option {
	return func(o *options) { o.poolSize = max(n, 1) }
}

// WithDialer replaces the function that opens connections (default: a
// net.Dialer with a 5 s timeout, bounded further by the context).
func WithDialer(dial DialFunc) Option {
	return func(o *options) {
		if dial != nil {
			o.dial = dial
		}
	}
}

// WithAbandonGrace sets how long a connection may stay silent after a call on
// it was abandoned at its context deadline before it is presumed dead and
// replaced (default DefaultAbandonGrace).
func WithAbandonGrace(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.grace = d
		}
	}
}

// Client is a pool of connections to one kvnode (or RoadRunner) RPC
// endpoint. It is safe for concurrent use.
type Client struct {
	network, address string
	opts             options

	slots []slot
	next  atomic.Uint64

	closed   atomic.Bool
	watchers watchers
}

// slot holds one pooled connection, replaced lazily when it breaks.
type slot struct {
	mu sync.Mutex
	c  *conn
}

// Dial connects to addr ("tcp://host:port", "host:port" or
// "unix:///path"). It opens every pooled connection before returning, so a
// server that is not there is reported at once.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	o := options{poolSize: DefaultPoolSize, grace: DefaultAbandonGrace}
	for _, opt := range opts {
		opt(&o)
	}
	if o.dial == nil {
		d := &net.Dialer{Timeout: defaultDialTimeout}
		o.dial = d.DialContext
	}
	c := &Client{network: network, address: address, opts: o, slots: make([]slot, o.poolSize)}
	for i := range c.slots {
		cn, err := dialConn(ctx, o.dial, network, address, &c.watchers, o.grace)
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		c.slots[i].c = cn
	}
	return c, nil
}

// Addr returns the address the client dials, in "network://address" form.
func (c *Client) Addr() string { return c.network + "://" + c.address }

// Close closes every connection. Calls in flight fail with an error
// wrapping ErrUnknownOutcome; later calls fail with ErrClosed.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	for i := range c.slots {
		s := &c.slots[i]
		s.mu.Lock()
		if s.c != nil {
			s.c.close()
		}
		s.mu.Unlock()
	}
	c.watchers.stop()
	return nil
}

// conn returns the connection of slot s, redialling it if it broke.
func (c *Client) conn(ctx context.Context, s *slot) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if s.c != nil && !s.c.broken.Load() {
		return s.c, nil
	}
	cn, err := dialConn(ctx, c.opts.dial, c.network, c.address, &c.watchers, c.opts.grace)
	if err != nil {
		return nil, err
	}
	if s.c != nil {
		s.c.close()
	}
	s.c = cn
	return cn, nil
}

// Call sends one raw request, e.g. Call(ctx, "kv.MGet", req, resp), for
// callers that build kv.v1 messages themselves. args and reply are usually
// *kvv1.Request and *kvv1.Response. After an error wrapping
// ErrUnknownOutcome, reply may still be written to by the connection's reader
// and must be discarded.
func (c *Client) Call(ctx context.Context, method string, args, reply any) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", method, context.Cause(ctx))
	}
	s := &c.slots[(c.next.Add(1)-1)%uint64(len(c.slots))]
	for attempt := 0; ; attempt++ {
		cn, err := c.conn(ctx, s)
		if err != nil {
			return err
		}
		err = cn.call(ctx, method, args, reply)
		if !errors.Is(err, errNotSent) {
			return err
		}
		if attempt > 0 {
			return fmt.Errorf("%s: %w %s: %w", method, ErrDial, c.Addr(), err)
		}
	}
}
