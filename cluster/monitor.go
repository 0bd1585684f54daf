package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Monitor watches a Node for status, readiness and metrics: it counts
// leader changes, remembers which members the leader fails to heartbeat,
// and learns the leader's commit index once, to tell when this node has
// caught up (Ready). It runs one raft observer and two goroutines; Close
// stops them.
type Monitor struct {
	n      *Node
	logger *slog.Logger
	obs    *raft.Observer
	ch     chan raft.Observation
	stop   chan struct{}
	// ctx ends when the monitor closes, cancelling a ReadIndex in flight.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	leaderChanges atomic.Uint64
	// target is the index the leader reported when this node first knew a
	// leader; targetKnown says it was learnt.
	target      atomic.Uint64
	targetKnown atomic.Bool

	mu         sync.Mutex
	lastLeader raft.ServerID
	failing    map[raft.ServerID]time.Time
}

// readyPoll is how often the monitor checks for a leader until it has
// learnt the leader's commit index.
const readyPoll = 100 * time.Millisecond

// NewMonitor starts watching n. Call it right after Open, so that the first
// leader is counted; close it before the node.
func NewMonitor(n *Node, logger *slog.Logger) *Monitor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{
		n:       n,
		logger:  logger.With("component", "cluster-monitor", "node", n.ID()),
		ch:      make(chan raft.Observation, 64),
		stop:    make(chan struct{}),
		failing: map[raft.ServerID]time.Time{},
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.obs = raft.NewObserver(m.ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.PeerObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(m.obs)
	// A leader elected before the observer was registered still counts.
	if _, id := n.raft.LeaderWithID(); id != "" {
		m.noteLeader(id)
	}
	m.wg.Add(2)
	go m.observe()
	go m.learnTarget()
	return m
}

// Close stops the monitor; calling it twice is harmless.
func (m *Monitor) Close() {
	m.once.Do(func() {
		m.n.raft.DeregisterObserver(m.obs)
		close(m.stop)
		m.cancel()
		m.wg.Wait()
	})
}

// LeaderChanges is the number of times this node has seen a new leader.
func (m *Monitor) LeaderChanges() uint64 { return m.leaderChanges.Load() }

func (m *Monitor) observe() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case o := <-m.ch:
			switch d := o.Data.(type) {
			case raft.LeaderObservation:
				m.noteLeader(d.LeaderID)
			case raft.FailedHeartbeatObservation:
				m.mu.Lock()
				m.failing[d.PeerID] = d.LastContact
				m.mu.Unlock()
			case raft.ResumedHeartbeatObservation:
				m.mu.Lock()
				delete(m.failing, d.PeerID)
				m.mu.Unlock()
			case raft.PeerObservation:
				if d.Removed {
					m.mu.Lock()
					delete(m.failing, d.Peer.ID)
					m.mu.Unlock()
				}
			}
		}
	}
}

func (m *Monitor) noteLeader(id raft.ServerID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id == "" || id == m.lastLeader {
		return
	}
	m.lastLeader = id
	m.leaderChanges.Add(1)
	// Heartbeat failures were the previous leader's view.
	clear(m.failing)
}

// failingSince returns the members whose heartbeats fail, with their last
// contact, as this node saw while leading.
func (m *Monitor) failingSince() map[raft.ServerID]time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.failing)
}

// learnTarget waits for a leader, then asks it (ReadIndex) how far the
// cluster has applied: once this node has applied that far it has caught
// up with everything committed before it joined in, and is ready.
func (m *Monitor) learnTarget() {
	defer m.wg.Done()
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		if id, _ := m.n.Leader(); id != "" {
			ctx, cancel := context.WithTimeout(m.ctx, 2*time.Second)
			idx, err := m.n.ReadIndex(ctx)
			cancel()
			switch {
			case err == nil:
				m.target.Store(idx)
				m.targetKnown.Store(true)
				m.logger.Debug("learnt the leader's commit index", "index", idx)
				return
			case errors.Is(err, ErrShutdown):
				return
			}
		}
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

// Ready reports whether the node should take traffic: it knows a leader
// and has applied at least the commit index the leader reported when this
// node first found it. The reason says what is missing.
func (m *Monitor) Ready() (bool, string) {
	if m.n.closed.Load() {
		return false, "node is shutting down"
	}
	if id, _ := m.n.Leader(); id == "" {
		return false, "no leader known"
	}
	if !m.targetKnown.Load() {
		return false, "waiting for the leader's commit index"
	}
	if applied, target := m.n.fsm.AppliedIndex(), m.target.Load(); applied < target {
		return false, fmt.Sprintf("catching up: applied %d of %d", applied, target)
	}
	return true, ""
}
