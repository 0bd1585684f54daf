package fsm

import "sync"

// outcomeWindow is how many recent log indexes Outcome remembers.
const outcomeWindow = 1 << 16

// outcomes remembers the state machine's refusals of recently applied
// entries. A leader that loses leadership while its entry is in flight
// learns from the log whether the entry committed (cluster/propose.go, resolveLost), but
// raft then has no response for it: Outcome supplies the result the entry
// had. Refusals are rare (validation happens before proposing), so only
// they are stored; any other index in the window succeeded.
type outcomes struct {
	mu sync.Mutex
	// from is the lowest index whose outcome this process knows: entries
	// below it were applied before a restart or came with a snapshot.
	from uint64
	// upto is the highest index applied.
	upto uint64
	errs map[uint64][]error
	// order lists the indexes in errs, oldest first, for pruning.
	order []uint64
}

// record notes a batch applied up to index, with the refusals among it.
func (o *outcomes) record(index uint64, refused map[uint64][]error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.upto = max(o.upto, index)
	if o.errs == nil {
		o.errs = map[uint64][]error{}
	}
	for i, err := range refused {
		o.errs[i] = err
		o.order = append(o.order, i)
	}
	for len(o.order) > 0 && o.order[0]+outcomeWindow < o.upto {
		delete(o.errs, o.order[0])
		o.order = o.order[1:]
	}
}

// forget marks everything up to index as applied without known outcomes
// (replayed over a persistent engine, or restored from a snapshot).
func (o *outcomes) forget(index uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.from = max(o.from, index+1)
	o.upto = max(o.upto, index)
}

// Outcome returns the state machine's result for each event of the command
// entry at index, which must be known committed (nil: all succeeded); ok is
// false when this FSM has not applied it yet or no longer remembers it.
func (f *FSM) Outcome(index uint64) (errs []error, ok bool) {
	o := &f.outcomes
	o.mu.Lock()
	defer o.mu.Unlock()
	if index < o.from || index > o.upto || index+outcomeWindow < o.upto {
		return nil, false
	}
	return o.errs[index], true
}
