package fsm

import (
	"time"

	"github.com/hashicorp/raft"
)

// Observer is told what the FSM spends its time on, for metrics. ObserveApply,
// ObserveAppliedEntry and ObserveRestore run on raft's FSM goroutine and
// ObserveSnapshot on its snapshot goroutine, so every method must be quick
// and safe for concurrent use.
type Observer interface {
	// ObserveApply reports one ApplyBatch: how many log entries it held and
	// how long applying them took.
	ObserveApply(entries int, elapsed time.Duration)
	// ObserveAppliedEntry reports, for each command entry, the time from the
	// leader appending it to its log to this FSM having applied it: on the
	// leader, raft's commit plus apply latency. On a follower the leader's
	// clock stamped the entry, so clock skew between hosts is included.
	ObserveAppliedEntry(sinceAppended time.Duration)
	// ObserveSnapshot reports one Persist: how long writing the snapshot
	// took and its error (nil on success).
	ObserveSnapshot(elapsed time.Duration, err error)
	// ObserveRestore reports one Restore and its error.
	ObserveRestore(elapsed time.Duration, err error)
}

// observerRef boxes an Observer for atomic.Pointer.
type observerRef struct{ o Observer }

// SetObserver installs o (nil removes it). It may be called at any time,
// also while raft runs: metrics are wired after the node has started.
func (f *FSM) SetObserver(o Observer) {
	if o == nil {
		f.obs.Store(nil)
		return
	}
	f.obs.Store(&observerRef{o: o})
}

func (f *FSM) observer() Observer {
	if r := f.obs.Load(); r != nil {
		return r.o
	}
	return nil
}

// observeApply reports a batch applied since start.
func (f *FSM) observeApply(logs []*raft.Log, start time.Time) {
	o := f.observer()
	if o == nil {
		return
	}
	now := time.Now()
	o.ObserveApply(len(logs), now.Sub(start))
	for _, l := range logs {
		if l.Type == raft.LogCommand && !l.AppendedAt.IsZero() {
			o.ObserveAppliedEntry(max(now.Sub(l.AppendedAt), 0))
		}
	}
}

func (f *FSM) observeRestore(start time.Time, err error) {
	if o := f.observer(); o != nil {
		o.ObserveRestore(time.Since(start), err)
	}
}
