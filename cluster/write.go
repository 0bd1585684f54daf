package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/trace"

	eventlog "github.com/kvnode/kvnode/log"
)

// Write commits ev through the leader, forwarding it when this node
// follows, and returns once it is committed. A write forwarded to the
// leader is not applied here yet when Write returns; every later read on
// this node waits until it is (awaitAcked), so whoever wrote reads the
// write here, from any connection. The error is nil, ErrNoLeader (nothing
// applied), ErrOutcomeUnknown, ErrShutdown, or the state machine's refusal.
func (n *Node) Write(ctx context.Context, ev eventlog.Event) (err error) {
	ctx, sp := n.startSpan(ctx, "cluster.write", trace.SpanKindInternal, writeAttrs(ev)...)
	defer func() { endSpan(sp, err) }()
	ctx, cancel := n.callContext(ctx)
	defer cancel()
	idx, err := n.propose(ctx, ev)
	if err != nil {
		return err
	}
	n.noteAcked(idx)
	return nil
}

// propose gets ev into the log and returns its index once committed,
// retrying while nothing was applied (no leader yet, leader changed).
func (n *Node) propose(ctx context.Context, ev eventlog.Event) (idx uint64, err error) {
	backoff := 5 * time.Millisecond
	var leaderless leaderWait
	for {
		if n.closed.Load() {
			return 0, ErrShutdown
		}
		o, known := outcome{retry: true}, true
		if n.raft.State() == raft.Leader {
			o = n.leaderBatcher.apply(ctx, ev, remaining(ctx, n.cfg.ApplyTimeout))
		} else if _, leaderAddr := n.Leader(); leaderAddr != "" {
			// With the writes other callers forward meanwhile (batch.go).
			o = n.batcher(leaderAddr).apply(ctx, ev, remaining(ctx, n.cfg.ApplyTimeout))
		} else {
			known = false
		}
		if !o.retry {
			return o.idx, o.err
		}
		if leaderless.expired(known, n.leaderWait()) {
			return 0, fmt.Errorf("%w (no leader known for %s)", ErrNoLeader, n.leaderWait())
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w (%w)", ErrNoLeader, ctx.Err())
		case <-n.stop:
			return 0, ErrShutdown
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// learnAcked runs after a restart: what this node acknowledged before it
// is not known any more, but it is all committed, so a read index from the
// leader covers it. Reads wait for it (awaitAcked), so a client that wrote
// here before the restart reads its writes here after it.
func (n *Node) learnAcked() {
	defer n.bg.Done()
	for {
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
		idx, err := n.ReadIndex(ctx)
		cancel()
		if err == nil {
			n.noteAcked(idx)
			close(n.acksKnown)
			return
		}
		select {
		case <-n.stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// noteAcked records that a write at idx was acknowledged by this node.
func (n *Node) noteAcked(idx uint64) {
	for {
		cur := n.acked.Load()
		if idx <= cur || n.acked.CompareAndSwap(cur, idx) {
			return
		}
	}
}

// callContext bounds a call by apply_timeout and the caller's deadline.
// It does not follow the caller's cancellation, only its deadline: a write
// proposed cannot be taken back anyway, and deriving from the RPC layer's
// context would make it start a timer of its own for every call (its
// contexts arm one lazily, on the first Done), which cost an eighth of a
// leader's CPU under load.
func (n *Node) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(n.cfg.ApplyTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return context.WithDeadline(context.WithoutCancel(ctx), deadline)
}

// ackedApplied reports, without waiting, whether this node has applied
// every write it acknowledged (the usual case: reads need not wait).
func (n *Node) ackedApplied() bool {
	select {
	case <-n.acksKnown:
		return n.fsm.AppliedIndex() >= n.acked.Load()
	default:
		return false
	}
}

// awaitAcked waits until this node has applied every write it has
// acknowledged, asking the leader for a nudge when that does not happen
// almost at once: a read on this node after a write acknowledged here
// sees the write. Usually the index is applied already.
func (n *Node) awaitAcked(ctx context.Context) error {
	select {
	case <-n.acksKnown:
	default:
		select {
		case <-n.acksKnown:
		case <-ctx.Done():
			return fmt.Errorf("%w: restarted, not yet caught up with the leader: %w", ErrNotApplied, ctx.Err())
		}
	}
	acked := n.acked.Load()
	if n.fsm.AppliedIndex() >= acked {
		return nil
	}
	_, leaderAddr := n.Leader()
	if err := n.waitApplied(ctx, acked, leaderAddr); err != nil {
		return fmt.Errorf("%w: this node has not yet applied a write it acknowledged (index %d): %w", ErrNotApplied, acked, err)
	}
	return nil
}

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
