package rrplugin

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvnode/kvnode/client"
)

// nodes is the cluster as the plugin sees it: one lazily dialled
// connection pool per address, and the node calls currently go to. Every
// storage of the plugin shares it.
//
// Calls stay on one node rather than spreading over all of them: a kvnode
// node answers every call (followers forward writes), so spreading buys
// nothing but connections, and one node at a time gives reads on
// `consistency: local` storages read-your-writes. A call moves on only when
// it provably did nothing (didNothing), and the node it then succeeds on
// becomes the one later calls go to.
type nodes struct {
	list []*node
	cur  atomic.Int64
	// onMove is told when calls move from one node to another.
	onMove func(from, to string)
	opts   []client.Option
}

// node is one address and its pool, dialled on first use.
type node struct {
	addr string
	mu   sync.Mutex
	c    *client.Client
	done bool
}

// Backoff between rounds over every node, while each refuses for want of
// a leader (an election takes about a second) or cannot be reached.
const (
	firstRoundBackoff = 50 * time.Millisecond
	maxRoundBackoff   = 500 * time.Millisecond
)

func newNodes(cfg *Config, onMove func(from, to string)) *nodes {
	d := &net.Dialer{Timeout: cfg.DialTimeout}
	ns := &nodes{
		onMove: onMove,
		opts:   []client.Option{client.WithPoolSize(cfg.PoolSize), client.WithDialer(d.DialContext)},
	}
	for _, a := range cfg.Addrs {
		ns.list = append(ns.list, &node{addr: a})
	}
	return ns
}

// current is the address calls go to now.
func (ns *nodes) current() string { return ns.list[ns.cur.Load()].addr }

// do runs call against the current node and, while the failure proves the
// call did nothing, against the next ones in turn, round after round with
// a backoff, until ctx ends. It returns the node's address with the
// outcome, and how many times the call moved.
func (ns *nodes) do(ctx context.Context, call func(context.Context, *client.Client) error) (addr string, moves int, err error) {
	start := int(ns.cur.Load())
	backoff := firstRoundBackoff
	// When every attempt fails, the answer is a node's "no leader" if one
	// gave it: it says more than a refused connection.
	var (
		failed     error
		failedAddr string
	)
	for i := 0; ; i++ {
		idx := (start + i) % len(ns.list)
		n := ns.list[idx]
		c, err := n.client(ctx, ns.opts)
		if err == nil {
			err = call(ctx, c)
		}
		if err == nil || !didNothing(err) {
			// This node answered; the one calls went to did not.
			ns.moveTo(start, idx)
			return n.addr, i, wrapNode(n.addr, err)
		}
		if failed == nil || !client.IsNoLeader(failed) || client.IsNoLeader(err) {
			failed, failedAddr = err, n.addr
		}
		if ctx.Err() != nil {
			return failedAddr, i, wrapNode(failedAddr, failed)
		}
		if (i+1)%len(ns.list) == 0 { // a whole round refused: let an election finish
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return failedAddr, i, wrapNode(failedAddr, failed)
			case <-t.C:
			}
			backoff = min(2*backoff, maxRoundBackoff)
		}
	}
}

// moveTo makes later calls go to node to, unless another call moved them
// elsewhere since this one started at from.
func (ns *nodes) moveTo(from, to int) {
	if from == to || !ns.cur.CompareAndSwap(int64(from), int64(to)) {
		return
	}
	if ns.onMove != nil {
		ns.onMove(ns.list[from].addr, ns.list[to].addr)
	}
}

func wrapNode(addr string, err error) error {
	if err == nil {
		return nil
	}
	return &nodeError{addr: addr, err: err}
}

// client returns the node's pool, dialling it if this is the first use or
// the last dial failed.
func (n *node) client(ctx context.Context, opts []client.Option) (*client.Client, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done {
		return nil, client.ErrClosed
	}
	if n.c != nil {
		return n.c, nil
	}
	c, err := client.Dial(ctx, n.addr, opts...)
	if err != nil {
		return nil, err // wrapNode names the node; the client's error says dial
	}
	n.c = c
	return c, nil
}

// close closes every pool; calls in flight end with an unknown outcome,
// later ones with client.ErrClosed.
func (ns *nodes) close() {
	for _, n := range ns.list {
		n.mu.Lock()
		n.done = true
		if n.c != nil {
			_ = n.c.Close()
		}
		n.mu.Unlock()
	}
}
