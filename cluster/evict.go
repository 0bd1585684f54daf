package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
	eventlog "github.com/kvnode/kvnode/log"
)

// Bounded storages (max_memory, max_keys) in a cluster. The limits are
// replicated state (OpLimit), so every node refuses the same writes; only
// the leader decides evictions, as OpEvict entries (compare-and-delete)
// proposed just before the writes that need the room, so the engines,
// which refuse any write that would pass the limit at apply, stay within
// it at every applied index and writes normally do not fail.
//
// The write path (propose.go, commit) calls planRoom for the ops of each
// bounded storage, puts the OpEvict it returns first in the entry (or, for
// single entries, proposes it just before the write), and wraps the
// entry's future with trackRoom, whose Error releases the reservation
// (every future must have Error called, as the write path does).

// evictor plans the leader's evictions for the storages whose engines can
// be bounded.
type evictor struct {
	n *Node
	// planners and configured are fixed at Open: one planner and the
	// configured limits (zero: unbounded) per evictable storage.
	planners   map[string]*drivers.Planner
	configured map[string]drivers.Limits
	// order is held from choosing an eviction until raft has it, so
	// evictions enter the log in the order they are numbered (see
	// drivers.Planner).
	order sync.Mutex
	// warned remembers the last limit change each storage could not make,
	// so it is logged once, not at every sweep.
	warned map[string]drivers.Limits
	// syncing is held by syncLimits; syncedTerm is the last term whose
	// leader brought the limits in force before its first write (commit).
	syncing    sync.Mutex
	syncedTerm atomic.Uint64
}

func newEvictor(n *Node) *evictor {
	ev := &evictor{
		n:          n,
		planners:   map[string]*drivers.Planner{},
		configured: map[string]drivers.Limits{},
		warned:     map[string]drivers.Limits{},
	}
	for _, name := range n.fsm.Names() {
		e, _ := n.fsm.Engine(name)
		if b, ok := e.(drivers.Evictable); ok {
			ev.planners[name] = drivers.NewPlanner(b, n.opts.EvictionSamples[name])
			ev.configured[name] = n.opts.Limits[name]
		}
	}
	return ev
}

// roomTicket is what planRoom reserved for one entry.
type roomTicket struct {
	p      *drivers.Planner
	ticket drivers.Ticket
}

// planRoom returns the eviction ops must be preceded by on storage to fit
// (nil when none is needed or none would help) and the ticket to hand to
// trackRoom with the future of the entry that carries them.
//
// Callers hold evict.order until the entry is handed to raft.
func (n *Node) planRoom(storage string, ops []drivers.Op, now int64) (*drivers.Op, roomTicket) {
	p := n.evict.planners[storage]
	if p == nil || !slices.ContainsFunc(ops, grows) {
		return nil, roomTicket{}
	}
	p.SetEpoch(n.raft.CurrentTerm())
	op, t := p.Plan(ops, now)
	return op, roomTicket{p: p, ticket: t}
}

// grows reports whether op may need room: only Set and MExpire add to a
// storage.
func grows(op drivers.Op) bool { return op.Kind == drivers.OpSet || op.Kind == drivers.OpMExpire }

// trackRoom returns fut keeping t reserved until fut's Error returns:
// until the entry is applied the engine's counts do not show its growth or
// the room its eviction frees. (A raft future must not be waited on by two
// goroutines, so the reservation rides on the caller's own wait.)
func trackRoom(fut raft.ApplyFuture, t roomTicket) raft.ApplyFuture {
	if t.p == nil {
		return fut
	}
	return &roomFuture{ApplyFuture: fut, p: t.p, ticket: t.ticket}
}

// roomFuture releases a reservation when its entry resolves.
type roomFuture struct {
	raft.ApplyFuture
	once   sync.Once
	p      *drivers.Planner
	ticket drivers.Ticket
}

func (f *roomFuture) Error() error {
	err := f.ApplyFuture.Error()
	f.once.Do(func() { f.p.Done(f.ticket) })
	return err // raft's own errors, classified by the caller
}

// syncLimits makes the replicated limits of every evictable storage those
// this leader is configured with, once the storage fits them: while it
// holds more than a lowered limit allows, it evicts (reason "limit
// lowered") a batch per call towards it under the new policy, and proposes
// the limit when it fits. Called from the leader's housekeeping (sweep.go).
func (n *Node) syncLimits() {
	ev := n.evict
	ev.syncing.Lock()
	defer ev.syncing.Unlock()
	for name, want := range ev.configured {
		e, _ := n.fsm.Engine(name)
		have := e.Stats().Limits
		if have == want {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
		err := n.proposeLimits(ctx, name, want)
		cancel()
		switch {
		case err == nil:
			n.logger.Info("storage limits set", "storage", name, "limits", want.String(), "were", have.String())
			delete(ev.warned, name)
		case errors.Is(err, drivers.ErrFull) && want.Policy == drivers.PolicyReject:
			if ev.warned[name] != want {
				ev.warned[name] = want
				n.logger.Warn("storage holds more than its configured limits allow, and eviction is reject: "+
					"the old limits stay until keys are deleted", "storage", name, "limits", want.String(), "in_force", have.String(),
					"usage", e.Stats().Usage, "keys", e.Stats().Keys)
			}
		case errors.Is(err, drivers.ErrFull):
			n.shrink(name, want)
		default:
			n.logger.Warn("setting storage limits failed", "storage", name, "limits", want.String(), "err", err)
		}
	}
}

// limitsBeforeWrites brings the configured limits in force before this
// leader's first write to a bounded storage in its term: a new cluster's
// storages are unbounded until the limits are in the log, and waiting for
// the housekeeping tick would let the writes of up to a sweep interval
// through unbounded.
func (n *Node) limitsBeforeWrites(events []eventlog.Event) {
	term := n.raft.CurrentTerm()
	if n.evict.syncedTerm.Load() == term || !n.needsRoom(events) {
		return
	}
	// Marked first: syncLimits commits through commit, which must not
	// come back here.
	if n.evict.syncedTerm.Swap(term) != term {
		n.syncLimits()
	}
}

// proposeLimits commits an OpLimit and returns its outcome.
func (n *Node) proposeLimits(ctx context.Context, name string, l drivers.Limits) error {
	_, err, _ := n.applyLeader(ctx, eventlog.Event{Storage: name, Op: drivers.Op{Kind: drivers.OpLimit, Limits: l}})
	return err
}

// shrinkBatch bounds the keys one eviction towards a lowered limit names.
const shrinkBatch = 1024

// shrink evicts up to a few batches of keys towards target.
func (n *Node) shrink(name string, target drivers.Limits) {
	p := n.evict.planners[name]
	for range 8 {
		fut, op, t := n.proposeShrink(p, name, target)
		if fut == nil {
			return
		}
		err := fut.Error()
		p.Done(t)
		if err != nil {
			n.logger.Warn("evicting towards a lowered limit failed", "storage", name, "err", err)
			return
		}
		n.logger.Info("evicted towards a lowered limit", "storage", name, "keys", len(op.Victims), "limits", target.String())
	}
}

// proposeShrink proposes one eviction towards target, in order with the
// evictions writes need.
func (n *Node) proposeShrink(p *drivers.Planner, name string, target drivers.Limits) (raft.ApplyFuture, *drivers.Op, drivers.Ticket) {
	n.evict.order.Lock()
	defer n.evict.order.Unlock()
	p.SetEpoch(n.raft.CurrentTerm())
	op, t := p.Shrink(target, n.stampNow(), shrinkBatch)
	if op == nil {
		return nil, nil, t
	}
	b, err := eventlog.Encode(eventlog.Event{Storage: name, Op: *op})
	if err != nil {
		p.Done(t)
		return nil, nil, t
	}
	return n.raft.Apply(b, n.cfg.ApplyTimeout), op, t
}

// checkBackupLimits refuses a backup section that holds more than the
// configured limits of its storage allow: restoring it would take the
// storage (on every node at once) past what its operator gave it, so it is
// refused before anything is restored rather than evicted down afterwards.
// A bounded section is measured as it streams by, never built.
func (n *Node) checkBackupLimits(storage string, section io.Reader) error {
	want := n.evict.configured[storage]
	if !want.Bounded() {
		return nil
	}
	e, _ := n.fsm.Engine(storage)
	st, err := e.(drivers.Evictable).Measure(section)
	if err != nil {
		return fmt.Errorf("storage %q: %w", storage, err)
	}
	if want.Over(st.Keys, st.Usage) {
		return fmt.Errorf("%w: storage %q holds %d keys using %d bytes, more than its configured %s allows: "+
			"raise the limits to restore it", drivers.ErrFull, storage, st.Keys, st.Usage, want)
	}
	return nil
}
