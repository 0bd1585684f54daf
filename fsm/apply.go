package fsm

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/internal/failpoint"
	eventlog "github.com/kvnode/kvnode/log"
)

// Result is the response of every command entry (ApplyFuture.Response is
// always a *Result for one): Errs holds the business outcome of each event
// the entry carries (one, or a batch's; eventlog.DecodeEntry), identical on
// every replica, and Index is the entry's log index.
type Result struct {
	Errs  []error
	Index uint64
}

// Err is the outcome of an entry holding a single event.
func (r *Result) Err() error {
	if len(r.Errs) == 0 {
		return nil
	}
	return r.Errs[0]
}

// group collects one batch's ops for one engine, in log order.
type group struct {
	name string
	eng  drivers.Engine
	ops  []drivers.Op
	res  []*error // where each op's outcome goes
	last uint64   // log index of the last op
}

// Apply applies one log entry; see ApplyBatch.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in order and returns one response per
// entry: a *Result for a command, nil for anything else (configuration
// changes), which still advances AppliedIndex.
//
// Ops are grouped by storage, keeping their order, and each engine gets one
// Apply per batch carrying the index of its last op, so a persistent engine
// commits the batch with one fsync and records that index with it. An op
// whose index is not above the engine's AppliedIndex was applied before a
// restart and is skipped (its Result has no error), so replaying the log
// over a persistent engine never applies an entry twice.
//
// ApplyBatch panics, after logging the entry, on an entry it cannot decode
// (eventlog.ErrCorrupt) and when an engine fails a batch as a whole
// (ErrApplyFailed): applying anything else would let this replica diverge,
// so it stops and catches up from the log or a snapshot once restarted.
// An unknown op marked ignorable is logged and skipped.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	failpoint.Sleep(failpoint.FSMApply) // a lagging state machine, in failpoint builds only
	start := time.Now()
	out := make([]any, len(logs))
	var groups []*group
	skipped, lastSkipped := 0, uint64(0)
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		// The engines copy what they keep, so values may alias the entry.
		events, err := eventlog.DecodeEntryShared(l.Data)
		switch {
		case errors.Is(err, eventlog.ErrIgnorable):
			f.log.Warn("skipping a log entry of an unknown ignorable kind", "index", l.Index, "term", l.Term, "err", err)
			out[i] = &Result{Index: l.Index, Errs: make([]error, 1)}
			continue
		case err != nil:
			f.log.Error("corrupt log entry: stopping this replica rather than diverge",
				"index", l.Index, "term", l.Term, "err", err)
			panic(fmt.Errorf("fsm: log entry %d (term %d): %w", l.Index, l.Term, err))
		}
		res := &Result{Index: l.Index, Errs: make([]error, len(events))}
		out[i] = res
		for j, ev := range events {
			if ev.Op.Now > f.clock.Load() {
				f.clock.Store(ev.Op.Now)
			}
			if ev.Op.Kind == drivers.OpTick {
				continue
			}
			g := groupFor(&groups, f, ev.Storage)
			if g == nil {
				res.Errs[j] = fmt.Errorf("%w: %q", ErrUnknownStorage, ev.Storage)
				continue
			}
			if l.Index <= g.eng.AppliedIndex() {
				skipped++
				lastSkipped = l.Index
				continue
			}
			g.ops = append(g.ops, ev.Op)
			g.res = append(g.res, &res.Errs[j])
			g.last = l.Index
		}
	}
	if skipped > 0 {
		f.log.Debug("skipped entries the engines already hold", "entries", skipped)
	}
	for _, g := range groups {
		if len(g.ops) == 0 {
			continue
		}
		errs, err := g.eng.Apply(g.last, g.ops)
		if err != nil {
			f.log.Error("storage failed to apply committed entries: stopping this replica",
				"storage", g.name, "last_index", g.last, "err", err)
			panic(fmt.Errorf("fsm: storage %q, entries up to %d: %w: %w", g.name, g.last, ErrApplyFailed, err))
		}
		for j, r := range g.res {
			if j < len(errs) {
				*r = errs[j]
				if errors.Is(*r, drivers.ErrFull) {
					// Say which storage is full: the client names only
					// its own.
					*r = fmt.Errorf("storage %q: %w", g.name, *r)
				}
			}
		}
	}
	if len(logs) > 0 {
		f.recordOutcomes(out, lastSkipped)
		f.setApplied(logs[len(logs)-1].Index)
	}
	f.observeApply(logs, start)
	return out
}

// recordOutcomes remembers the refusals among a batch's results (see
// Outcome); entries skipped up to lastSkipped have no known outcome.
func (f *FSM) recordOutcomes(out []any, lastSkipped uint64) {
	var refused map[uint64][]error
	var last uint64
	for _, r := range out {
		res, ok := r.(*Result)
		if !ok {
			continue
		}
		last = res.Index
		for _, err := range res.Errs {
			if err != nil {
				if refused == nil {
					refused = map[uint64][]error{}
				}
				refused[res.Index] = res.Errs
				break
			}
		}
	}
	if lastSkipped > 0 {
		f.outcomes.forget(lastSkipped)
	}
	f.outcomes.record(last, refused)
}

// groupFor returns the batch group of storage name, creating it on first
// use, or nil when the FSM does not replicate that storage.
func groupFor(groups *[]*group, f *FSM, name string) *group {
	for _, g := range *groups {
		if g.name == name {
			return g
		}
	}
	eng, ok := f.engines[name]
	if !ok {
		return nil
	}
	g := &group{name: name, eng: eng}
	*groups = append(*groups, g)
	return g
}
