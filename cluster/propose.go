package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/fsm"
	eventlog "github.com/kvnode/kvnode/log"
)

// The leader's side of a write. Concurrent writes (local callers queue in
// the leader's batcher, forwarded ones arrive batched already) become one
// raft entry: a batch event (eventlog.JoinBatch) that one log append, one
// replication round and one FSM apply serve, each event in it still
// applied on its own with its own result. A leader writes batches only
// when every member can apply them (versions.go); until then each event is
// its own entry, all proposed before any is waited for, so they still
// share one log write.

// leaderBatchEvents and leaderBatchBytes bound one entry of coalesced
// writes: far above what 64 callers queue, far below raft's and the
// network's sizes.
const (
	leaderBatchEvents = 1024
	leaderBatchBytes  = 4 << 20
)

// outcome is what became of one event: its log index once committed, the
// state machine's refusal, or whether nothing was applied and another
// attempt may succeed.
type outcome struct {
	idx   uint64
	err   error
	retry bool
}

// commit proposes events on this node, which must lead, and returns one
// outcome per event. A write to a bounded storage is preceded, in the same
// entry (or, writing single entries, just before it), by the eviction that
// makes room for it (evict.go), so the engines stay within their limits at
// every applied index.
func (n *Node) commit(ctx context.Context, events []eventlog.Event) []outcome {
	out := make([]outcome, len(events))
	if n.raft.State() != raft.Leader {
		for i := range out {
			out[i].retry = true
		}
		return out
	}
	n.limitsBeforeWrites(events)
	if n.needsRoom(events) {
		// Evictions enter the log in the order they are planned.
		n.evict.order.Lock()
		defer n.evict.order.Unlock()
	}
	now := n.stampNow()
	timeout := remaining(ctx, n.cfg.ApplyTimeout)
	if len(events) > 1 && n.batchesOK() {
		evicts, tickets := n.planRooms(events, now)
		data, err := eventlog.EncodeBatch(now, append(evicts, events...))
		if err != nil {
			for i := range out {
				out[i].err = fmt.Errorf("encode batch: %w", err)
			}
			releaseRooms(tickets)
			return out
		}
		fut := n.raft.Apply(data, timeout)
		for _, t := range tickets {
			fut = trackRoom(fut, t)
		}
		return n.settle(ctx, proposal{fut: fut, data: data, events: len(events), skip: len(evicts)})
	}
	props := make([]proposal, len(events))
	for i, ev := range events {
		ev.Op.Now = now
		data, err := eventlog.Encode(ev)
		if err != nil {
			out[i].err = fmt.Errorf("encode event: %w", err)
			continue
		}
		evicts, tickets := n.planRooms(events[i:i+1], now)
		for _, e := range evicts {
			e.Op.Now = now
			if b, err := eventlog.Encode(e); err == nil {
				n.raft.Apply(b, timeout) // in order just before the write; the write's outcome tells
			}
		}
		fut := n.raft.Apply(data, timeout)
		for _, t := range tickets {
			fut = trackRoom(fut, t)
		}
		props[i] = proposal{fut: fut, data: data, events: 1}
	}
	for i, p := range props {
		if p.fut != nil {
			out[i] = n.settle(ctx, p)[0]
		}
	}
	return out
}

// needsRoom reports whether any event may need an eviction first.
func (n *Node) needsRoom(events []eventlog.Event) bool {
	for _, ev := range events {
		if n.evict.planners[ev.Storage] != nil && grows(ev.Op) {
			return true
		}
	}
	return false
}

// planRooms plans, per bounded storage the events write to, the eviction
// their writes need; it returns those eviction events and the tickets
// that keep the room reserved until the entry resolves (trackRoom).
// The caller holds evict.order.
func (n *Node) planRooms(events []eventlog.Event, now int64) ([]eventlog.Event, []roomTicket) {
	var evicts []eventlog.Event
	var tickets []roomTicket
	seen := map[string]bool{}
	for _, ev := range events {
		if seen[ev.Storage] || n.evict.planners[ev.Storage] == nil {
			continue
		}
		seen[ev.Storage] = true
		var ops []drivers.Op
		for _, e := range events {
			if e.Storage == ev.Storage {
				ops = append(ops, e.Op)
			}
		}
		op, t := n.planRoom(ev.Storage, ops, now)
		if t.p != nil {
			tickets = append(tickets, t)
		}
		if op != nil {
			evicts = append(evicts, eventlog.Event{Storage: ev.Storage, Op: *op})
		}
	}
	return evicts, tickets
}

// releaseRooms gives back what planRooms reserved for an entry that was
// never proposed.
func releaseRooms(tickets []roomTicket) {
	for _, t := range tickets {
		t.p.Done(t.ticket)
	}
}

// applyLeader commits one event on this node as its own entry.
func (n *Node) applyLeader(ctx context.Context, ev eventlog.Event) (idx uint64, err error, retry bool) {
	o := n.commit(ctx, []eventlog.Event{ev})[0]
	return o.idx, o.err, o.retry
}

// proposal is an entry handed to raft: its future, its encoding (by which
// it is recognised in the log if leadership is lost), how many of the
// callers' events it carries, and how many evictions precede them.
type proposal struct {
	fut    raft.ApplyFuture
	data   []byte
	events int
	skip   int
}

// settle waits for a proposal and classifies what became of its events.
func (n *Node) settle(ctx context.Context, p proposal) []outcome {
	err, done := wait(ctx, p.fut)
	switch {
	case !done:
		return same(p.events, outcome{err: fmt.Errorf("%w (%w)", ErrOutcomeUnknown, err)})
	case err == nil:
		res, _ := p.fut.Response().(*fsm.Result)
		return outcomes(p.fut.Index(), p.events, p.skip, res)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Refused before it was appended: nothing was applied.
		return same(p.events, outcome{retry: true})
	case errors.Is(err, raft.ErrRaftShutdown):
		return same(p.events, outcome{err: fmt.Errorf("%w: %w", ErrShutdown, ErrOutcomeUnknown)})
	case errors.Is(err, raft.ErrLeadershipLost):
		return n.resolveLost(ctx, p, err)
	default: // anything raft adds later
		return same(p.events, outcome{err: fmt.Errorf("%w (%w)", ErrOutcomeUnknown, err)})
	}
}

// same is n copies of o.
func same(n int, o outcome) []outcome {
	out := make([]outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}

// outcomes spreads a committed entry's result over the callers' events,
// which follow skip evictions in it.
func outcomes(idx uint64, events, skip int, res *fsm.Result) []outcome {
	out := make([]outcome, events)
	for i := range out {
		out[i].idx = idx
		if res != nil && skip+i < len(res.Errs) {
			out[i].err = res.Errs[skip+i]
		}
	}
	return out
}

// resolveLostPoll is how often resolveLost looks at the commit index.
const resolveLostPoll = 2 * time.Millisecond

// resolveLost finds out what became of an entry this node appended as
// leader before losing leadership. Once this node's commit index (now
// learnt from the new leader) covers the entry's index, its log holds the
// committed entry there: ours if the bytes are equal, so it was applied;
// another one otherwise, so ours never will be. Only when the deadline
// passes first, or the entry was compacted away, is the outcome unknown.
func (n *Node) resolveLost(ctx context.Context, p proposal, cause error) []outcome {
	idx := p.fut.Index()
	unknown := same(p.events, outcome{err: fmt.Errorf("%w (%w)", ErrOutcomeUnknown, cause)})
	if idx == 0 {
		return unknown
	}
	t := time.NewTicker(resolveLostPoll)
	defer t.Stop()
	for n.raft.CommitIndex() < idx {
		select {
		case <-ctx.Done():
			return unknown
		case <-n.stop:
			return unknown
		case <-t.C:
		}
	}
	var l raft.Log
	if err := n.stores.Log.GetLog(idx, &l); err != nil {
		return unknown
	}
	if l.Type != raft.LogCommand || !bytes.Equal(l.Data, p.data) {
		return same(p.events, outcome{retry: true})
	}
	if err := n.fsm.WaitApplied(ctx, idx); err != nil {
		return unknown
	}
	errs, ok := n.fsm.Outcome(idx)
	if !ok {
		return unknown
	}
	return outcomes(idx, p.events, p.skip, &fsm.Result{Index: idx, Errs: errs})
}

// commitWrites is the leader batcher's send: one commit for the writes
// that queued together, each finished with its own outcome.
func (n *Node) commitWrites(ws []*queuedWrite) {
	events := make([]eventlog.Event, len(ws))
	deadline := ws[0].deadline
	for i, w := range ws {
		events[i] = w.ev
		if w.deadline.After(deadline) {
			deadline = w.deadline
		}
	}
	ctx, cancel := context.WithDeadline(n.ctx, deadline)
	defer cancel()
	ctx, sp := n.startBatchSpan(ctx, "raft.apply", trace.SpanKindInternal, writeContexts(ws))
	outs := n.commit(ctx, events)
	if sp != nil {
		failed, last := 0, uint64(0)
		for _, o := range outs {
			if o.err != nil || o.retry {
				failed++
			}
			last = max(last, o.idx)
		}
		sp.SetAttributes(attribute.Int("kv.failed", failed), attribute.Int64("raft.index", int64(last)))
		endSpan(sp, nil)
	}
	for i, o := range outs {
		ws[i].finish(o)
	}
}
