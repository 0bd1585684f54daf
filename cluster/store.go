package cluster

import (
	"context"
	"fmt"

	"github.com/kvnode/kvnode/drivers"
	eventlog "github.com/kvnode/kvnode/log"
)

// Consistency is a storage's read level.
type Consistency int

const (
	// ReadLocal serves reads from this node's state: read-your-writes on this node,
	// possibly stale elsewhere.
	ReadLocal Consistency = iota
	// ReadLinearizable reads first wait for the leader's confirmed commit index.
	ReadLinearizable
)

// ParseConsistency maps the config word to a level ("" = local).
func ParseConsistency(s string) (Consistency, error) {
	switch s {
	case "", "local":
		return ReadLocal, nil
	case "linearizable":
		return ReadLinearizable, nil
	default:
		return ReadLocal, fmt.Errorf("%w: consistency %q (want local or linearizable)", ErrConfig, s)
	}
}

// Store returns the drivers.Store of the replicated storage name, reading
// at level: the engine served through the raft log (replicated).
func (n *Node) Store(name string, level Consistency) (drivers.Store, error) {
	e, ok := n.fsm.Engine(name)
	if !ok {
		return nil, fmt.Errorf("%w: storage %q is not replicated", ErrConfig, name)
	}
	opts := drivers.EngineStoreOptions{SpanPrefix: name, Tracer: n.tracer}
	if _, evictable := e.(drivers.Evictable); evictable {
		opts.OnRead = func(keys []string) {
			if n.hinting(e) {
				n.noteReads(name, keys)
			}
		}
	}
	return drivers.NewEngineStore(e, &replicated{n: n, name: name, level: level}, opts), nil
}

// replicated commits a storage's writes through raft, and readies reads
// at its consistency level.
type replicated struct {
	n     *Node
	name  string
	level Consistency
}

var (
	_ drivers.Committer     = (*replicated)(nil)
	_ drivers.ReadyReporter = (*replicated)(nil)
)

// ReadsReady implements drivers.ReadyReporter: a local read is ready
// when this node has applied every write it acknowledged (ReadTime then
// returns at once); a linearizable one never is, it asks the leader.
func (s *replicated) ReadsReady() bool {
	return (s.level != ReadLinearizable || s.n.cfg.Unsafe.LocalLinearizableReads) && s.n.ackedApplied()
}

// ReadTime implements drivers.Committer: it prepares a read at the
// storage's level and returns the time it judges expiry by.
func (s *replicated) ReadTime(ctx context.Context) (int64, error) {
	if s.level != ReadLinearizable || s.n.cfg.Unsafe.LocalLinearizableReads {
		if !s.n.ackedApplied() {
			ctx, cancel := s.n.callContext(ctx)
			defer cancel()
			if err := s.n.awaitAcked(ctx); err != nil {
				return 0, err
			}
		}
		if s.level == ReadLinearizable {
			return s.n.opts.Clock().UnixNano(), nil
		}
		return s.n.localReadTime(), nil
	}
	ctx, cancel := s.n.callContext(ctx)
	defer cancel()
	idx, leaderAddr, err := s.n.readIndex(ctx)
	if err != nil {
		return 0, err
	}
	if err := s.n.waitApplied(ctx, idx, leaderAddr); err != nil {
		return 0, fmt.Errorf("%w (%w)", ErrNotLinearizable, err)
	}
	return s.n.readTime(), nil
}

// Commit implements drivers.Committer: the leader stamps the event when
// it proposes it (propose.go).
func (s *replicated) Commit(ctx context.Context, op drivers.Op) error {
	return s.n.Write(ctx, eventlog.Event{Storage: s.name, Op: op})
}
