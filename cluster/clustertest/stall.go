package clustertest

import (
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
type stallEngine struct {
	drivers.Engine
	s *stallSwitch
}

func (e *stallEngine) Apply(index uint64, ops []drivers.Op) ([]error, error) {
	e.s.wait()
	return e.Engine.Apply(index, ops) //nolint:wrapcheck // the engine's own errors
}
