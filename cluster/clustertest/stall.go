package clustertest

import (
	"io"
	"sync"

	"github.com/kvnode/kvnode/drivers"
)

// stallSwitch holds back an engine's writes while it is closed.
type stallSwitch struct {
	mu   sync.Mutex
	gate chan struct{} // nil: not stalled
}

func (s *stallSwitch) stall() func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate == nil {
		s.gate = make(chan struct{})
	}
	gate := s.gate
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.gate == gate {
			s.gate = nil
			close(gate)
		}
	}
}

// open releases whatever waits, so a node can stop.
func (s *stallSwitch) open() {
	s.mu.Lock()
	gate := s.gate
	s.gate = nil
	s.mu.Unlock()
	if gate != nil {
		close(gate)
	}
}

func (s *stallSwitch) wait() {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
}

// stallEngine is a real engine whose Apply can be held back (Stall): the
// FSM goroutine blocks before the engine changes, reads go on meanwhile.
// after, when set, is called once each Apply has returned.
type stallEngine struct {
	drivers.Engine
	s     *stallSwitch
	after func(drivers.Engine)
}

func (e *stallEngine) Apply(index uint64, ops []drivers.Op) ([]error, error) {
	e.s.wait()
	errs, err := e.Engine.Apply(index, ops)
	if e.after != nil {
		e.after(e.Engine)
	}
	return errs, err // the engine's own errors
}

// stallEvictable is a stallEngine over an engine that can be bounded, so
// the cluster still plans evictions for it.
type stallEvictable struct {
	*stallEngine
	ev drivers.Evictable
}

// wrapEngine returns e behind a stall switch, keeping what it implements.
func wrapEngine(e drivers.Engine, s *stallSwitch, after func(drivers.Engine)) drivers.Engine {
	st := &stallEngine{Engine: e, s: s, after: after}
	if ev, ok := e.(drivers.Evictable); ok {
		return &stallEvictable{stallEngine: st, ev: ev}
	}
	return st
}

func (e *stallEvictable) Growth(op *drivers.Op) (int64, int64) { return e.ev.Growth(op) }
func (e *stallEvictable) Accounting() drivers.Accounting       { return e.ev.Accounting() }
func (e *stallEvictable) Peek(key string, now int64) (drivers.Candidate, bool) {
	return e.ev.Peek(key, now)
}
func (e *stallEvictable) Touch(now int64, keys []string) { e.ev.Touch(now, keys) }
func (e *stallEvictable) Resolve(c drivers.Candidate) (drivers.Candidate, bool) {
	return e.ev.Resolve(c)
}
func (e *stallEvictable) Measure(r io.Reader) (drivers.Stats, error) {
	return e.ev.Measure(r) // the engine's own errors
}
func (e *stallEvictable) Candidates(p drivers.Policy, n, skip int, before uint32, dst []drivers.Candidate) []drivers.Candidate {
	return e.ev.Candidates(p, n, skip, before, dst)
}
