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
	// Local reads serve this node's state: read-your-writes on this node,
	// possibly stale elsewhere.
	Local Consistency = iota
	// Linearizable reads first wait for the leader's confirmed commit index.
	Linearizable
)

// ParseConsistency maps the config word to a level ("" = local).
func ParseConsistency(s string) (Consistency, error) {
	switch s {
	case "", "local":
		return Local, nil
	case "linearizable":
		return Linearizable, nil
	default:
		return Local, fmt.Errorf("%w: consistency %q (want local or linearizable)", ErrConfig, s)
	}
}

// Store returns the drivers.Store of the replicated storage name, reading
// at level.
func (n *Node) Store(name string, level Consistency) (drivers.Store, error) {
	e, ok := n.fsm.Engine(name)
	if !ok {
		return nil, fmt.Errorf("%w: storage %q is not replicated", ErrConfig, name)
	}
	return &replicated{n: n, name: name, e: e, level: level}, nil
}

// replicated is a storage whose writes go through raft.
type replicated struct {
	n     *Node
	name  string
	e     drivers.Engine
	level Consistency
}

var _ drivers.Store = (*replicated)(nil)

// readNow prepares a read at the storage's level and returns the time it
// judges expiry by.
func (s *replicated) readNow(ctx context.Context) (int64, error) {
	if s.level != Linearizable || s.n.cfg.Unsafe.LocalLinearizableReads {
		if !s.n.ackedApplied() {
			ctx, cancel := s.n.callContext(ctx)
			defer cancel()
			if err := s.n.awaitAcked(ctx); err != nil {
				return 0, err
			}
		}
		if s.level == Linearizable {
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

func (s *replicated) Has(ctx context.Context, keys []string) ([]string, error) {
	now, err := s.readNow(ctx)
	if err != nil {
		return nil, err
	}
	found, err := s.e.Has(now, keys)
	if len(found) > 0 && s.n.hinting(s.e) {
		s.n.noteReads(s.name, found)
	}
	return found, err //nolint:wrapcheck
}

func (s *replicated) MGet(ctx context.Context, keys []string) ([]drivers.Item, error) {
	now, err := s.readNow(ctx)
	if err != nil {
		return nil, err
	}
	items, err := s.e.MGet(now, keys)
	if len(items) > 0 && s.n.hinting(s.e) {
		s.n.noteReads(s.name, itemKeys(items))
	}
	return items, err //nolint:wrapcheck
}

// itemKeys returns the keys of items (for access hints).
func itemKeys(items []drivers.Item) []string {
	keys := make([]string, len(items))
	for i := range items {
		keys[i] = items[i].Key
	}
	return keys
}

func (s *replicated) TTL(ctx context.Context, keys []string) ([]drivers.Item, error) {
	now, err := s.readNow(ctx)
	if err != nil {
		return nil, err
	}
	return s.e.TTL(now, keys) //nolint:wrapcheck
}

func (s *replicated) write(ctx context.Context, op drivers.Op) error {
	return s.n.Apply(ctx, eventlog.Event{Storage: s.name, Op: op})
}

func (s *replicated) Set(ctx context.Context, items []drivers.Item) error {
	return s.write(ctx, drivers.Op{Kind: drivers.OpSet, Items: items})
}

func (s *replicated) MExpire(ctx context.Context, items []drivers.Item) error {
	return s.write(ctx, drivers.Op{Kind: drivers.OpMExpire, Items: items})
}

func (s *replicated) Delete(ctx context.Context, keys []string) error {
	return s.write(ctx, drivers.Op{Kind: drivers.OpDelete, Keys: keys})
}

func (s *replicated) Clear(ctx context.Context) error {
	return s.write(ctx, drivers.Op{Kind: drivers.OpClear})
}

// Close is a no-op: the node owns the raft side and the caller the engine.
func (s *replicated) Close() error { return nil }
