package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Concurrent linearizable reads share ReadIndex rounds: a read joins the
// next round to start, never one already under way (whose index may
// predate the read), and one round answers every read that joined it. On
// a follower that is one forwarded call per round instead of one per read;
// on the leader one VerifyLeader. With 64 readers a round serves dozens.

// readRounds coalesces ReadIndex attempts.
type readRounds struct {
	mu      sync.Mutex
	running bool
	next    *readRound
}

// readRound is one ReadIndex attempt and its outcome, published by
// closing done.
type readRound struct {
	done chan struct{}
	idx  uint64
	addr string
	ok   bool
}

// readIndexOnce makes one ReadIndex attempt through the next round: ok is
// false when the round found no leader to confirm an index.
func (n *Node) readIndexOnce(ctx context.Context) (idx uint64, leaderAddr string, ok bool) {
	rr := &n.reads
	rr.mu.Lock()
	if rr.next == nil {
		rr.next = &readRound{done: make(chan struct{})}
	}
	r := rr.next
	if !rr.running {
		rr.running = true
		rr.next = nil
		go n.runReadRounds(r)
	}
	rr.mu.Unlock()
	select {
	case <-r.done:
		return r.idx, r.addr, r.ok
	case <-ctx.Done():
		return 0, "", false
	}
}

// runReadRounds runs r, then the round that gathered meanwhile, until no
// reader waits.
func (n *Node) runReadRounds(r *readRound) {
	timeout := max(time.Second, 2*n.cfg.Raft.ElectionTimeout)
	for r != nil {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		r.idx, r.addr, r.ok = n.readIndexAttempt(ctx)
		cancel()
		rr := &n.reads
		rr.mu.Lock()
		next := rr.next
		rr.next = nil
		if next == nil {
			rr.running = false
		}
		rr.mu.Unlock()
		close(r.done)
		r = next
	}
}

// readIndexAttempt asks this node (leading) or the leader it knows for a
// read index, once.
func (n *Node) readIndexAttempt(ctx context.Context) (uint64, string, bool) {
	if n.closed.Load() {
		return 0, "", false
	}
	if n.raft.State() == raft.Leader {
		idx, ok := n.leaderReadIndex(ctx)
		return idx, "", ok
	}
	_, addr := n.Leader()
	if addr == "" {
		return 0, "", false
	}
	var reply ReadIndexReply
	_, err := n.fwd.call(ctx, addr, "ReadIndex", ReadIndexArgs{Timeout: remaining(ctx, n.cfg.ApplyTimeout)}, &reply)
	if err != nil || reply.Code != codeOK {
		return 0, "", false
	}
	return reply.Index, addr, true
}
