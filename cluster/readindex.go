package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
	eventlog "github.com/kvnode/kvnode/log"
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
		// The node's context, not a reader's: the round serves every reader
		// that joined it, so none of them may end it; closing the node does.
		ctx, cancel := context.WithTimeout(n.ctx, timeout)
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
	reply, err := n.peers.readIndex(ctx, addr, remaining(ctx, n.cfg.ApplyTimeout))
	if err != nil || reply.Code != codeOK {
		return 0, "", false
	}
	return reply.Index, addr, true
}

// ReadIndex returns a log index such that every write acknowledged before
// the call is at or below it, confirmed by a round of heartbeats
// (VerifyLeader) so a deposed leader cannot answer.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	idx, _, err := n.readIndex(ctx)
	return idx, err
}

// readIndex is ReadIndex that also names the leader that answered ("" when
// this node leads), so a follower can ask it for a nudge.
func (n *Node) readIndex(ctx context.Context) (index uint64, leaderAddr string, err error) {
	backoff := 2 * time.Millisecond
	var leaderless leaderWait
	for {
		if n.closed.Load() {
			return 0, "", ErrShutdown
		}
		if idx, addr, ok := n.readIndexOnce(ctx); ok {
			return idx, addr, nil
		}
		known := n.raft.State() == raft.Leader
		if !known {
			_, addr := n.Leader()
			known = addr != ""
		}
		if leaderless.expired(known, n.leaderWait()) {
			return 0, "", fmt.Errorf("%w (no leader known for %s)", ErrNotLinearizable, n.leaderWait())
		}
		select {
		case <-ctx.Done():
			return 0, "", fmt.Errorf("%w (%w)", ErrNotLinearizable, ctx.Err())
		case <-n.stop:
			return 0, "", ErrShutdown
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// leaderReadIndex is ReadIndex on the leader (Raft thesis §6.4). It
// takes raft's commit index, confirms leadership with a round of heartbeats
// (VerifyLeader) and waits until its own FSM has applied that far, so it
// never hands out an index below what a follower (which learns the commit
// index on its own) may already have served. The FSM only sees command and
// configuration entries, so the index handed out is the last of those at or
// below the commit index (fsmIndexCovering): every node's FSM reaches it.
//
// A tick takes the place of all that when the leader has not yet committed
// an entry of its own term (its commit index may not yet cover entries
// committed under its predecessors) or when the replicated clock lags its
// clock by more than clockStep: a committed entry of this term proves
// leadership, covers every earlier entry, and its Now advances the clock
// linearizable reads judge expiry by (see readTime).
func (n *Node) leaderReadIndex(ctx context.Context) (uint64, bool) {
	term := n.raft.CurrentTerm()
	if n.readyTerm.Load() != term || n.clockBehind() {
		return n.tick(ctx, term)
	}
	ci := n.raft.CommitIndex()
	if err, done := wait(ctx, n.raft.VerifyLeader()); !done || err != nil {
		return 0, false
	}
	if n.raft.CurrentTerm() != term {
		return 0, false
	}
	idx, err := n.fsmIndexCovering(ci)
	if err != nil {
		n.logger.Warn("read index: reading the log failed", "commit_index", ci, "err", err)
		return 0, false
	}
	if err := n.fsm.WaitApplied(ctx, idx); err != nil {
		return 0, false
	}
	return idx, true
}

// tick commits an OpTick and returns its index, applied here.
func (n *Node) tick(ctx context.Context, term uint64) (uint64, bool) {
	n.barrierMu.Lock()
	defer n.barrierMu.Unlock()
	idx, err, _ := n.applyLeader(ctx, eventlog.Event{Op: drivers.Op{Kind: drivers.OpTick}})
	if err != nil || idx == 0 {
		return 0, false
	}
	if n.raft.CurrentTerm() == term {
		n.readyTerm.Store(term)
	}
	return idx, true
}

// fsmIndexCovering returns the index of the last entry the FSM sees at or
// below ci (raft keeps no-ops and barriers from it), or the FSM's applied
// index when that is higher: once a node's FSM has applied the returned
// index it holds every entry up to ci.
func (n *Node) fsmIndexCovering(ci uint64) (uint64, error) {
	applied := n.fsm.AppliedIndex()
	for i := ci; i > applied; i-- {
		var l raft.Log
		if err := n.stores.Log.GetLog(i, &l); err != nil {
			return 0, fmt.Errorf("entry %d: %w", i, err)
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i, nil
		}
	}
	return applied, nil
}

// clockStep is how far the replicated clock may lag a leader's clock
// before a linearizable read makes the leader commit a tick; it is also
// how much earlier than by the leader's clock such a read may see a key
// expire (readTime).
const clockStep = 50 * time.Millisecond

// clockBehind reports whether the replicated clock lags this node's clock
// by more than clockStep.
func (n *Node) clockBehind() bool {
	return n.opts.Clock().UnixNano() > n.fsm.Clock()+int64(clockStep)
}

// stampNow is the Now a leader stamps on an event (drivers.Stamper): its
// clock, floored at the replicated clock.
func (n *Node) stampNow() int64 { return n.stamper.Now() }

// readTime is the time a linearizable read judges expiry by, once this node
// has applied the read index: the replicated clock plus clockStep. It is a
// function of the log, so it never goes backwards from one read to a later
// one, whichever nodes serve them and whatever their clocks say; and since
// the leader ticks whenever its clock is more than clockStep ahead of the
// replicated clock, it is never behind the leader's clock: a key is never
// served after its deadline by the leader's clock, and hidden at most
// clockStep early (plus however far a former leader's clock ran ahead).
func (n *Node) readTime() int64 {
	c := n.fsm.Clock()
	if c == 0 { // nothing applied since an old snapshot without a clock
		return n.opts.Clock().UnixNano()
	}
	return c + int64(clockStep)
}

// localReadTime is the time a local read judges expiry by: this node's
// clock, never below the replicated clock it has applied nor below a time
// an earlier local read on this node used (drivers.ReadClock).
func (n *Node) localReadTime() int64 { return n.localReads.Now() }
