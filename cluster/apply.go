package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/fsm"
	eventlog "github.com/kvnode/kvnode/log"
)

// Apply commits ev through the leader (forwarding it when this node
// follows) and returns once it is applied on this node too, so the caller
// reads its own write here. The error is nil, ErrNoLeader (nothing applied),
// ErrOutcomeUnknown, ErrShutdown, or the state machine's own refusal.
func (n *Node) Apply(ctx context.Context, ev eventlog.Event) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	idx, leaderAddr, err := n.propose(ctx, ev)
	if err != nil {
		return err
	}
	if err := n.waitApplied(ctx, idx, leaderAddr); err != nil {
		// Committed, so it will be applied; but not here within the
		// deadline, and the caller must not assume it can read it here.
		return fmt.Errorf("%w: committed at index %d, not yet applied on this node: %w", ErrOutcomeUnknown, idx, err)
	}
	return nil
}

// propose gets ev into the log and returns its index once committed, and
// the leader's address when it was forwarded and this node must ask that
// leader for a nudge itself, retrying while nothing was applied (no leader
// yet, leader changed).
func (n *Node) propose(ctx context.Context, ev eventlog.Event) (idx uint64, leaderAddr string, err error) {
	backoff := 5 * time.Millisecond
	var leaderless leaderWait
	for {
		if n.closed.Load() {
			return 0, "", ErrShutdown
		}
		retry, known := true, true
		leaderAddr = ""
		if n.raft.State() == raft.Leader {
			idx, err, retry = n.applyLeader(ctx, ev)
		} else if _, leaderAddr = n.Leader(); leaderAddr != "" {
			var batched bool
			idx, err, retry, batched = n.forwardApply(ctx, leaderAddr, ev)
			if batched {
				leaderAddr = "" // its batch asks for the nudge
			}
		} else {
			known = false
		}
		if !retry {
			return idx, leaderAddr, err
		}
		if leaderless.expired(known, n.leaderWait()) {
			return 0, "", fmt.Errorf("%w (no leader known for %s)", ErrNoLeader, n.leaderWait())
		}
		select {
		case <-ctx.Done():
			return 0, "", fmt.Errorf("%w (%w)", ErrNoLeader, ctx.Err())
		case <-n.stop:
			return 0, "", ErrShutdown
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// applyLeader stamps ev with this leader's clock and proposes it. retry
// means nothing was applied and another attempt may succeed.
func (n *Node) applyLeader(ctx context.Context, ev eventlog.Event) (idx uint64, err error, retry bool) {
	p, err := n.startApply(ctx, ev)
	if err != nil {
		return 0, err, false
	}
	err, done := wait(ctx, p.fut)
	if !done {
		return 0, fmt.Errorf("%w (%w)", ErrOutcomeUnknown, err), false
	}
	return n.applyOutcome(ctx, p, err)
}

// proposal is an event handed to raft: its future and its encoding, by
// which the entry is recognised in the log if leadership is lost.
type proposal struct {
	fut  raft.ApplyFuture
	data []byte
}

// startApply stamps ev with this leader's clock and hands it to raft
// without waiting, so a batch of forwarded writes can all be enqueued
// before the first is waited for.
func (n *Node) startApply(ctx context.Context, ev eventlog.Event) (proposal, error) {
	ev.Op.Now = n.stampNow()
	data, err := eventlog.Encode(ev)
	if err != nil {
		return proposal{}, fmt.Errorf("encode event: %w", err)
	}
	return proposal{fut: n.applyRoom(ev, data, remaining(ctx, n.cfg.ApplyTimeout)), data: data}, nil
}

// applyOutcome classifies a resolved proposal: err is p.fut.Error().
func (n *Node) applyOutcome(ctx context.Context, p proposal, err error) (idx uint64, _ error, retry bool) {
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Refused before it was appended: nothing was applied.
		return 0, nil, true
	case errors.Is(err, raft.ErrRaftShutdown):
		return 0, fmt.Errorf("%w: %w", ErrShutdown, ErrOutcomeUnknown), false
	case errors.Is(err, raft.ErrLeadershipLost):
		return n.resolveLost(ctx, p, err)
	default: // anything raft adds later
		return 0, fmt.Errorf("%w (%w)", ErrOutcomeUnknown, err), false
	}
	if res, ok := p.fut.Response().(*fsm.Result); ok && res != nil && res.Err != nil {
		return p.fut.Index(), res.Err, false
	}
	return p.fut.Index(), nil, false
}

// resolveLostPoll is how often resolveLost looks at the commit index.
const resolveLostPoll = 2 * time.Millisecond

// resolveLost finds out what became of an entry this node appended as
// leader before losing leadership. Once this node's commit index (now
// learnt from the new leader) covers the entry's index, its log holds the
// committed entry there: ours if the bytes are equal, so it was applied;
// another one otherwise, so ours never will be. Only when the deadline
// passes first, or the entry was compacted away, is the outcome unknown.
func (n *Node) resolveLost(ctx context.Context, p proposal, cause error) (uint64, error, bool) {
	idx := p.fut.Index()
	unknown := fmt.Errorf("%w (%w)", ErrOutcomeUnknown, cause)
	if idx == 0 {
		return 0, unknown, false
	}
	t := time.NewTicker(resolveLostPoll)
	defer t.Stop()
	for n.raft.CommitIndex() < idx {
		select {
		case <-ctx.Done():
			return 0, unknown, false
		case <-n.stop:
			return 0, unknown, false
		case <-t.C:
		}
	}
	var l raft.Log
	if err := n.stores.Log.GetLog(idx, &l); err != nil {
		return 0, unknown, false
	}
	if l.Type != raft.LogCommand || !bytes.Equal(l.Data, p.data) {
		return 0, nil, true
	}
	if err := n.fsm.WaitApplied(ctx, idx); err != nil {
		return 0, unknown, false
	}
	res, ok := n.fsm.Outcome(idx)
	if !ok {
		return 0, unknown, false
	}
	return idx, res, false
}

// forwardApply sends ev to the leader at addr, with the writes other
// callers forward meanwhile (forwardbatch.go). batched reports that it
// went in a batch, which also takes care of nudging the leader.
func (n *Node) forwardApply(ctx context.Context, addr string, ev eventlog.Event) (idx uint64, err error, retry, batched bool) {
	timeout := remaining(ctx, n.cfg.ApplyTimeout)
	if idx, err, retry, ok := n.batcher(addr).apply(ctx, ev, timeout); ok {
		return idx, err, retry, true
	}
	var reply ApplyReply
	sent, err := n.fwd.call(ctx, addr, "Apply", ApplyArgs{Event: ev, Timeout: timeout}, &reply)
	switch {
	case err != nil && !sent:
		return 0, nil, true, false
	case err != nil:
		return 0, fmt.Errorf("%w (forwarding to leader %s: %w)", ErrOutcomeUnknown, addr, err), false, false
	}
	idx, err, retry = replyOutcome(addr, reply)
	return idx, err, retry, false
}

// replyOutcome turns the leader's reply to one forwarded write into what
// propose expects: index, error, and whether to retry.
func replyOutcome(addr string, reply ApplyReply) (uint64, error, bool) {
	switch reply.Code {
	case codeOK:
		return reply.Index, nil, false
	case codeRetry:
		return 0, nil, true
	case codeUnknown:
		return 0, fmt.Errorf("%w (leader %s: %s)", ErrOutcomeUnknown, addr, reply.Text), false
	default:
		return reply.Index, errors.New(reply.Text), false //nolint:err113 // the leader's state machine refusal, relayed as text
	}
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

// stampNow is the Now a leader stamps on an event: its clock, but never
// below the replicated clock, so the clock in the log never goes back when
// leadership moves to a node whose clock is behind.
func (n *Node) stampNow() int64 { return max(n.opts.Clock().UnixNano(), n.fsm.Clock()) }

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
// clock, never below the replicated clock it has applied.
func (n *Node) localReadTime() int64 { return n.stampNow() }

// leaderWait measures how long one call has found no leader at all. A
// node cut off from the others knows no leader once its heartbeat timeout
// passes; rather than retry until the caller's deadline (clients then see
// a timeout, "maybe applied"), the call fails after leaderWait with "no
// leader": nothing was applied, retry elsewhere. An election in progress
// usually ends well within it.
type leaderWait struct{ since time.Time }

// expired records whether a leader is known and reports whether none has
// been for longer than limit.
func (w *leaderWait) expired(known bool, limit time.Duration) bool {
	if known {
		w.since = time.Time{}
		return false
	}
	if w.since.IsZero() {
		w.since = time.Now()
		return false
	}
	return time.Since(w.since) > limit
}

// leaderWait is how long a write or linearizable read waits for some
// leader to be known: two election timeouts.
func (n *Node) leaderWait() time.Duration { return 2 * n.cfg.Raft.ElectionTimeout }
