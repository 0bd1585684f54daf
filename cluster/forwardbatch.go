package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	eventlog "github.com/kvnode/kvnode/log"
)

// Concurrent writes a follower forwards travel together: one ApplyBatch
// call carries every write that queued while earlier calls were under way,
// instead of one call (and one leader goroutine, one gob frame, one reply
// wake-up) per write. A write that finds fewer than maxBatchesInFlight
// calls under way leaves at once, so a lone writer never waits for
// company; several calls may be under way so one slow call (a leader
// fsync, a lost packet) does not hold every write behind it. On the leader
// each write is still its own log entry, atomic on its own with its own
// result; the leader proposes them all before waiting for any, so they
// leave raft's apply channel together and share one log write. A batch
// also asks the leader for a nudge (nudge.go) once for all its writes.

const (
	// maxBatchesInFlight bounds the ApplyBatch calls under way to one
	// leader; writes arriving meanwhile queue for the next.
	maxBatchesInFlight = 3
	// maxBatchEvents and maxBatchBytes bound one call: raft's
	// MaxAppendEntries, and an estimated payload far below gob's and the
	// kv RPC frame limits (a larger single write still goes, alone).
	maxBatchEvents = 256
	maxBatchBytes  = 1 << 20
	// legacyRecheck is how long a leader without ApplyBatch gets one call
	// per write before batching is tried again.
	legacyRecheck = time.Minute
)

// ApplyBatchArgs carries writes forwarded together; each is proposed as
// its own log entry.
type ApplyBatchArgs struct {
	Events []eventlog.Event
	// Timeout is the longest remaining budget among the writes.
	Timeout time.Duration
}

// ApplyBatchReply holds one result per event, in order.
type ApplyBatchReply struct {
	Results []ApplyReply
}

// ProposeArgs carries writes a follower forwards together, each in the
// event log's encoding: no gob reflection over events on either side, and
// the leader checks each one by decoding it.
type ProposeArgs struct {
	Events [][]byte
	// Timeout is the longest remaining budget among the writes.
	Timeout time.Duration
}

// ProposeReply holds one result per event, in order.
type ProposeReply struct {
	Results []ApplyReply
}

// Propose commits forwarded events if this node leads (propose.go): as one
// batch entry when every member can apply one. An event that does not
// decode is refused alone.
func (f *forwarder) Propose(args ProposeArgs, reply *ProposeReply) error {
	n := f.n
	ctx, cancel := context.WithTimeout(n.ctx, min(args.Timeout, n.cfg.ApplyTimeout))
	defer cancel()
	reply.Results = make([]ApplyReply, len(args.Events))
	events := make([]eventlog.Event, 0, len(args.Events))
	at := make([]int, 0, len(args.Events))
	for i, raw := range args.Events {
		ev, err := eventlog.Decode(raw)
		if err != nil {
			reply.Results[i] = replyFor(0, fmt.Errorf("forwarded event: %w", err), false)
			continue
		}
		events = append(events, ev)
		at = append(at, i)
	}
	for j, o := range n.leaderBatcher.applyAll(ctx, events, remaining(ctx, n.cfg.ApplyTimeout)) {
		reply.Results[at[j]] = replyFor(o.idx, o.err, o.retry)
	}
	return nil
}

// ApplyBatch is Propose for followers older than it: their events come
// gob-encoded.
func (f *forwarder) ApplyBatch(args ApplyBatchArgs, reply *ApplyBatchReply) error {
	n := f.n
	ctx, cancel := context.WithTimeout(n.ctx, min(args.Timeout, n.cfg.ApplyTimeout))
	defer cancel()
	reply.Results = make([]ApplyReply, len(args.Events))
	for i, o := range n.leaderBatcher.applyAll(ctx, args.Events, remaining(ctx, n.cfg.ApplyTimeout)) {
		reply.Results[i] = replyFor(o.idx, o.err, o.retry)
	}
	return nil
}

// fwdWrite is one forwarded write, queued or travelling in a batch.
type fwdWrite struct {
	ctx      context.Context
	ev       eventlog.Event
	size     int
	deadline time.Time
	// queued is guarded by the batcher's mutex: true until a batch takes
	// the write or its caller gives up on it.
	queued bool
	// done is closed once idx, err and retry are set.
	done  chan struct{}
	idx   uint64
	err   error
	retry bool
}

func (w *fwdWrite) finish(idx uint64, err error, retry bool) {
	w.idx, w.err, w.retry = idx, err, retry
	close(w.done)
}

// batcher queues writes and sends them in batches through send, which
// must finish every write it is given: on a follower the writes forwarded
// to one leader address (forwardbatch.go), on the leader its own writes
// and those followers forward (propose.go).
type batcher struct {
	send func(batch []*fwdWrite)
	// slots bounds the batches under way at once, maxEvents and maxBytes
	// one batch; zero takes the forwarding defaults.
	slots, maxEvents, maxBytes int

	mu       sync.Mutex
	inflight int
	pending  []*fwdWrite
	// legacyUntil is set when the leader does not know ApplyBatch (an
	// older version during a rolling restart): until then writes go one
	// call each, and the next batch finds out whether it was upgraded.
	legacyUntil time.Time

	// batches and events count what was sent, for tests and diagnostics.
	batches, events atomic.Uint64
}

// apply sends ev through the batcher and returns the index, the error,
// and whether nothing was applied so the caller may retry. ok is false
// when the leader needs one call per write.
func (b *batcher) apply(ctx context.Context, ev eventlog.Event, timeout time.Duration) (idx uint64, err error, retry, ok bool) {
	b.mu.Lock()
	if time.Now().Before(b.legacyUntil) {
		b.mu.Unlock()
		return 0, nil, false, false
	}
	w := b.enqueueLocked(ctx, ev, time.Now().Add(timeout))
	b.startLocked()
	b.mu.Unlock()
	o := b.await(ctx, w)
	return o.idx, o.err, o.retry, true
}

// applyAll sends events through the batcher together and returns one
// outcome per event.
func (b *batcher) applyAll(ctx context.Context, events []eventlog.Event, timeout time.Duration) []outcome {
	deadline := time.Now().Add(timeout)
	ws := make([]*fwdWrite, len(events))
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

func (b *batcher) enqueueLocked(ctx context.Context, ev eventlog.Event, deadline time.Time) *fwdWrite {
	w := &fwdWrite{ctx: ctx, ev: ev, size: eventSize(ev), deadline: deadline, queued: true, done: make(chan struct{})}
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
func (b *batcher) await(ctx context.Context, w *fwdWrite) outcome {
	select {
	case <-w.done:
		return outcome{w.idx, w.err, w.retry}
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
		return outcome{w.idx, w.err, w.retry}
	default:
		return outcome{err: fmt.Errorf("%w (sent, no outcome in time: %w)", ErrOutcomeUnknown, ctx.Err())}
	}
}

// run sends batch, then whatever queued meanwhile, until the queue is
// empty; it holds one of the in-flight slots throughout.
func (b *batcher) run(batch []*fwdWrite) {
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
func (b *batcher) takeLocked() []*fwdWrite {
	var batch []*fwdWrite
	size, taken := 0, 0
	for _, w := range b.pending {
		if len(batch) == cmp.Or(b.maxEvents, maxBatchEvents) || (len(batch) > 0 && size+w.size > cmp.Or(b.maxBytes, maxBatchBytes)) {
			break
		}
		taken++
		w.queued = false
		if w.ctx.Err() != nil {
			w.finish(0, nil, true)
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

func (b *batcher) removeLocked(w *fwdWrite) {
	for i, p := range b.pending {
		if p == w {
			b.pending = slices.Delete(b.pending, i, i+1)
			w.queued = false
			return
		}
	}
}

// isUnknownMethod reports net/rpc's refusal of a method the server does
// not have: it answers before running anything.
func isUnknownMethod(err error) bool {
	var se rpc.ServerError
	return errors.As(err, &se) && strings.Contains(string(se), "can't find method")
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
	fc := n.fwd
	fc.bmu.Lock()
	defer fc.bmu.Unlock()
	b, ok := fc.batchers[addr]
	if !ok {
		b = &batcher{}
		b.send = func(batch []*fwdWrite) { n.sendBatch(b, addr, batch) }
		fc.batchers[addr] = b
	}
	return b
}

// sendBatch makes one ApplyBatch call and finishes every write of batch
// with its own outcome. A failure before sending (refused dial, connection
// known broken) applied nothing; a failure after sending leaves every
// write of the batch unknown.
func (n *Node) sendBatch(b *batcher, addr string, batch []*fwdWrite) {
	args := ProposeArgs{Events: make([][]byte, len(batch))}
	deadline := batch[0].deadline
	for i, w := range batch {
		if w.deadline.After(deadline) {
			deadline = w.deadline
		}
		var err error
		if args.Events[i], err = eventlog.Encode(w.ev); err != nil {
			// Validated before proposing, so never; refuse it alone.
			w.finish(0, fmt.Errorf("encode event: %w", err), false)
			args.Events[i] = nil
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	args.Timeout = remaining(ctx, time.Millisecond)
	var reply ProposeReply
	sent, err := n.fwd.call(ctx, addr, "Propose", args, &reply)
	switch {
	case isUnknownMethod(err):
		// An older leader refused the method before running anything.
		b.mu.Lock()
		b.legacyUntil = time.Now().Add(legacyRecheck)
		b.mu.Unlock()
		for i, w := range batch {
			if args.Events[i] != nil {
				w.finish(0, nil, true)
			}
		}
		return
	case err != nil && !sent:
		for i, w := range batch {
			if args.Events[i] != nil {
				w.finish(0, nil, true)
			}
		}
		return
	case err != nil:
		err = fmt.Errorf("%w (forwarding to leader %s: %w)", ErrOutcomeUnknown, addr, err)
	case len(reply.Results) != len(batch):
		err = fmt.Errorf("%w (leader %s answered %d results for %d writes)", ErrOutcomeUnknown, addr, len(reply.Results), len(batch))
	}
	if err != nil {
		for i, w := range batch {
			if args.Events[i] != nil {
				w.finish(0, err, false)
			}
		}
		return
	}
	for i, w := range batch {
		if args.Events[i] != nil {
			w.finish(replyOutcome(addr, reply.Results[i]))
		}
	}
}
