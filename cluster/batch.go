package cluster

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	eventlog "github.com/kvnode/kvnode/log"
)

// Concurrent writes travel together. On a follower, one Propose call
// (peer.go) to the leader carries every write that queued while earlier calls were under way,
// instead of one call (and one leader goroutine, one gob frame, one reply
// wake-up) per write. A write that finds fewer than maxBatchesInFlight
// calls under way leaves at once, so a lone writer never waits for
// company; several calls may be under way so one slow call (a leader
// fsync, a lost packet) does not hold every write behind it. On the leader
// the same batcher, with one slot, gathers its own writes and those
// followers forward into batch entries (propose.go); each write keeps its
// own result.

const (
	// maxBatchesInFlight bounds the Propose calls under way to one
	// leader; writes arriving meanwhile queue for the next.
	maxBatchesInFlight = 3
	// maxBatchEvents and maxBatchBytes bound one call: raft's
	// MaxAppendEntries, and an estimated payload far below gob's and the
	// kv RPC frame limits (a larger single write still goes, alone).
	maxBatchEvents = 256
	maxBatchBytes  = 1 << 20
	// oldLeaderRecheck is how long a leader without Propose (the version
	// before it) is sent ApplyBatch before Propose is tried again.
	oldLeaderRecheck = time.Minute
)

// queuedWrite is one write, queued or travelling in a batch.
type queuedWrite struct {
	ctx      context.Context
	ev       eventlog.Event
	size     int
	deadline time.Time
	// queued is guarded by the batcher's mutex: true until a batch takes
	// the write or its caller gives up on it.
	queued bool
	// done is closed once out is set.
	done chan struct{}
	out  outcome
}

func (w *queuedWrite) finish(o outcome) {
	w.out = o
	close(w.done)
}

// batcher queues writes and sends them in batches through send, which
// must finish every write it is given: on a follower the writes forwarded
// to one leader address (sendBatch), on the leader its own writes
// and those followers forward (propose.go).
type batcher struct {
	send func(batch []*queuedWrite)
	// slots bounds the batches under way at once, maxEvents and maxBytes
	// one batch; zero takes the forwarding defaults.
	slots, maxEvents, maxBytes int

	mu       sync.Mutex
	inflight int
	pending  []*queuedWrite
	// oldLeaderUntil is set when the leader does not know Propose (an
	// older version during a rolling restart): until then batches go as
	// ApplyBatch, and the next one after finds out whether it was upgraded.
	oldLeaderUntil time.Time

	// batches and events count what was sent, for tests and diagnostics.
	batches, events atomic.Uint64
}

// apply sends ev through the batcher and returns its outcome.
func (b *batcher) apply(ctx context.Context, ev eventlog.Event, timeout time.Duration) outcome {
	b.mu.Lock()
	w := b.enqueueLocked(ctx, ev, time.Now().Add(timeout))
	b.startLocked()
	b.mu.Unlock()
	return b.await(ctx, w)
}

// applyAll sends events through the batcher together and returns one
// outcome per event.
func (b *batcher) applyAll(ctx context.Context, events []eventlog.Event, timeout time.Duration) []outcome {
	deadline := time.Now().Add(timeout)
	ws := make([]*queuedWrite, len(events))
	b.mu.Lock()
	for i, ev := range events {
		ws[i] = b.enqueueLocked(ctx, ev, deadline)
	}
	b.startLocked()
	b.mu.Unlock()
	out := make([]outcome, len(ws))
	for i, w := range ws {
		out[i] = b.await(ctx, w)
	}
	return out
}

func (b *batcher) enqueueLocked(ctx context.Context, ev eventlog.Event, deadline time.Time) *queuedWrite {
	w := &queuedWrite{ctx: ctx, ev: ev, size: eventSize(ev), deadline: deadline, queued: true, done: make(chan struct{})}
	b.pending = append(b.pending, w)
	return w
}

// startLocked starts sending what is queued if a slot is free.
func (b *batcher) startLocked() {
	if b.inflight >= cmp.Or(b.slots, maxBatchesInFlight) || len(b.pending) == 0 {
		return
	}
	b.inflight++
	go b.run(b.takeLocked())
}

// await waits for w's outcome; a caller that gives up while w is still
// queued takes it out (nothing was sent: retry), one that gives up after
// it was sent cannot know (outcome unknown).
func (b *batcher) await(ctx context.Context, w *queuedWrite) outcome {
	select {
	case <-w.done:
		return w.out
	case <-ctx.Done():
	}
	b.mu.Lock()
	if w.queued {
		b.removeLocked(w)
		b.mu.Unlock()
		return outcome{retry: true}
	}
	b.mu.Unlock()
	select {
	case <-w.done: // finished by takeLocked (expired) or just now by the reply
		return w.out
	default:
		return outcome{err: fmt.Errorf("%w (sent, no outcome in time: %w)", ErrOutcomeUnknown, ctx.Err())}
	}
}

// run sends batch, then whatever queued meanwhile, until the queue is
// empty; it holds one of the in-flight slots throughout.
func (b *batcher) run(batch []*queuedWrite) {
	for {
		if len(batch) > 0 {
			b.batches.Add(1)
			b.events.Add(uint64(len(batch)))
			b.send(batch)
		}
		b.mu.Lock()
		if len(b.pending) == 0 {
			b.inflight--
			b.mu.Unlock()
			return
		}
		batch = b.takeLocked()
		b.mu.Unlock()
	}
}

// takeLocked removes the next batch from the queue, in arrival order.
// Writes whose callers gave up are finished as "retry" instead: they were
// never sent.
func (b *batcher) takeLocked() []*queuedWrite {
	var batch []*queuedWrite
	size, taken := 0, 0
	for _, w := range b.pending {
		if len(batch) == cmp.Or(b.maxEvents, maxBatchEvents) || (len(batch) > 0 && size+w.size > cmp.Or(b.maxBytes, maxBatchBytes)) {
			break
		}
		taken++
		w.queued = false
		if w.ctx.Err() != nil {
			w.finish(outcome{retry: true})
			continue
		}
		batch = append(batch, w)
		size += w.size
	}
	rest := copy(b.pending, b.pending[taken:])
	clear(b.pending[rest:])
	b.pending = b.pending[:rest]
	return batch
}

func (b *batcher) removeLocked(w *queuedWrite) {
	for i, p := range b.pending {
		if p == w {
			b.pending = slices.Delete(b.pending, i, i+1)
			w.queued = false
			return
		}
	}
}

// eventSize estimates an event's encoded size for the batch byte budget.
func eventSize(ev eventlog.Event) int {
	size := 64 + len(ev.Storage)
	for _, it := range ev.Op.Items {
		size += 32 + len(it.Key) + len(it.Value) + len(it.Timeout)
	}
	for _, k := range ev.Op.Keys {
		size += 8 + len(k)
	}
	return size
}

// batcher returns the batcher of the leader at addr.
func (n *Node) batcher(addr string) *batcher {
	pc := n.peers
	pc.bmu.Lock()
	defer pc.bmu.Unlock()
	b, ok := pc.batchers[addr]
	if !ok {
		b = &batcher{}
		b.send = func(batch []*queuedWrite) { n.sendBatch(b, addr, batch) }
		pc.batchers[addr] = b
	}
	return b
}

// sendBatch makes one Propose call (ApplyBatch to a leader older than
// Propose) and finishes every write of batch with its own outcome. A
// failure before sending (refused dial, connection known broken) applied
// nothing; a failure after sending leaves every write of the batch unknown.
func (n *Node) sendBatch(b *batcher, addr string, batch []*queuedWrite) {
	batch, raw := encodeBatch(batch)
	if len(batch) == 0 {
		return
	}
	deadline := batch[0].deadline
	for _, w := range batch[1:] {
		if w.deadline.After(deadline) {
			deadline = w.deadline
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	ctx, sp := n.startBatchSpan(ctx, "cluster.forward", trace.SpanKindClient, writeContexts(batch))
	if sp != nil {
		sp.SetAttributes(attribute.String("kv.leader", DialAddr(addr)))
	}
	timeout := remaining(ctx, time.Millisecond)
	var (
		results []Result
		sent    bool
		err     error
	)
	if !b.toOldLeader() {
		var reply ProposeReply
		reply, sent, err = n.peers.propose(ctx, addr, ProposeArgs{Events: raw, Timeout: timeout, Trace: injectTrace(ctx)})
		results = reply.Results
	}
	if b.toOldLeader() || isUnknownMethod(err) {
		// An older leader refused Propose before running anything.
		b.markOldLeader()
		events := make([]eventlog.Event, len(batch))
		for i, w := range batch {
			events[i] = w.ev
		}
		var reply ApplyBatchReply
		reply, sent, err = n.peers.applyBatch(ctx, addr, ApplyBatchArgs{Events: events, Timeout: timeout})
		results = reply.Results
	}
	endSpan(sp, err)
	switch {
	case err != nil && !sent:
		for _, w := range batch {
			w.finish(outcome{retry: true})
		}
		return
	case err != nil:
		err = fmt.Errorf("%w (forwarding to leader %s: %w)", ErrOutcomeUnknown, DialAddr(addr), err)
	case len(results) != len(batch):
		err = fmt.Errorf("%w (leader %s answered %d results for %d writes)", ErrOutcomeUnknown, DialAddr(addr), len(results), len(batch))
	}
	for i, w := range batch {
		if err != nil {
			w.finish(outcome{err: err})
		} else {
			w.finish(outcomeOf(addr, results[i]))
		}
	}
}

// writeContexts are the contexts of batch's callers, for its span.
func writeContexts(batch []*queuedWrite) []context.Context {
	ctxs := make([]context.Context, len(batch))
	for i, w := range batch {
		ctxs[i] = w.ctx
	}
	return ctxs
}

// encodeBatch encodes each write of batch for Propose. A write that does
// not encode (validated before it was queued, so never) is refused alone
// and left out.
func encodeBatch(batch []*queuedWrite) ([]*queuedWrite, [][]byte) {
	raw := make([][]byte, 0, len(batch))
	kept := batch[:0]
	for _, w := range batch {
		b, err := eventlog.Encode(w.ev)
		if err != nil {
			w.finish(outcome{err: fmt.Errorf("encode event: %w", err)})
			continue
		}
		kept = append(kept, w)
		raw = append(raw, b)
	}
	return kept, raw
}

// toOldLeader reports whether the leader was found older than Propose a
// short while ago.
func (b *batcher) toOldLeader() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return time.Now().Before(b.oldLeaderUntil)
}

func (b *batcher) markOldLeader() {
	b.mu.Lock()
	if !time.Now().Before(b.oldLeaderUntil) {
		b.oldLeaderUntil = time.Now().Add(oldLeaderRecheck)
	}
	b.mu.Unlock()
}
