package memory

import (
	"fmt"

	"github.com/kvnode/kvnode/drivers"
)

// Apply applies ops in order under one write lock, so a reader sees either
// none or all of each op (and of the batch). Each op is validated before the
// lock is taken; errs[i] != nil means op i changed nothing. The only batch
// error is drivers.ErrClosed.
//
// The engine takes ownership of every Item.Value in ops: it stores the
// slices without copying, and the caller must not modify them afterwards.
func (e *Engine) Apply(index uint64, ops []drivers.Op) ([]error, error) {
	errs := make([]error, len(ops))
	for i := range ops {
		errs[i] = validate(&ops[i])
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, drivers.ErrClosed
	}
	for i := range ops {
		if errs[i] == nil {
			e.apply(&ops[i])
		}
	}
	e.applied.Store(index)
	return errs, nil
}

// validate checks everything about op that does not depend on the state, so
// that applying it cannot fail half-way.
func validate(op *drivers.Op) error {
	switch op.Kind {
	case drivers.OpSet, drivers.OpMExpire, drivers.OpExpire:
		for i := range op.Items {
			if drivers.BlankKey(op.Items[i].Key) {
				return fmt.Errorf("memory: %s item %d: %w", op.Kind, i, drivers.ErrEmptyKey)
			}
			if len(op.Items[i].Key) > maxKeyLen {
				return fmt.Errorf("memory: %s item %d: %w", op.Kind, i, ErrKeyTooLong)
			}
		}
	case drivers.OpDelete:
		for i, k := range op.Keys {
			if drivers.BlankKey(k) {
				return fmt.Errorf("memory: %s key %d: %w", op.Kind, i, drivers.ErrEmptyKey)
			}
		}
	case drivers.OpClear:
	default:
		return fmt.Errorf("memory: op kind %d: %w", op.Kind, drivers.ErrUnknownOp)
	}
	return nil
}

// apply performs a validated op; it cannot fail. Callers hold the write lock.
func (e *Engine) apply(op *drivers.Op) {
	switch op.Kind {
	case drivers.OpSet:
		for i := range op.Items {
			it := &op.Items[i]
			if drivers.Expired(it.Deadline, op.Now) {
				// Already expired: PSR-16 says a TTL of zero or less removes it.
				e.remove(it.Key)
				continue
			}
			e.put(it.Key, it.Value, it.Timeout, it.Deadline)
		}
	case drivers.OpMExpire:
		for i := range op.Items {
			it := &op.Items[i]
			s := e.tab.shard(it.Key)
			en, ok := s.m[it.Key]
			if !ok || !en.visible(op.Now) {
				continue
			}
			if drivers.Expired(it.Deadline, op.Now) {
				e.removeEntry(s, it.Key, en)
				continue
			}
			en.exp = e.setExpiry(en.exp, it.Key, it.Timeout, it.Deadline)
			s.writable()[it.Key] = en
		}
	case drivers.OpDelete:
		for _, k := range op.Keys {
			e.remove(k)
		}
	case drivers.OpClear:
		// Fresh maps return the old ones' memory to the runtime; snapshots
		// still holding them are unaffected.
		e.tab.reset()
		e.heap = nil
		e.keys.Store(0)
		e.bytes.Store(0)
	case drivers.OpExpire:
		for i := range op.Items {
			it := &op.Items[i]
			// Compare-and-delete: a key re-set or re-expired after the
			// sweeper saw it has a different deadline and survives.
			s := e.tab.shard(it.Key)
			if en, ok := s.m[it.Key]; ok && en.exp != nil && en.exp.deadline == it.Deadline {
				e.removeEntry(s, it.Key, en)
			}
		}
	}
}

// put stores key with a new value and expiry (deadline 0 = none), replacing
// whatever was there.
func (e *Engine) put(key string, val []byte, timeout string, deadline int64) {
	s := e.tab.shard(key)
	old, ok := s.m[key]
	if ok {
		e.bytes.Add(int64(len(val) - len(old.val)))
	} else {
		e.keys.Add(1)
		e.bytes.Add(int64(len(key) + len(val)))
	}
	s.writable()[key] = entry{val: ownedString(val), exp: e.setExpiry(old.exp, key, timeout, deadline)}
}

// setExpiry replaces the expiry record old (nil = none) with a new one for
// deadline (0 = none), keeping the heap in step, and returns the new record.
// Records are never modified in place because snapshots share them.
func (e *Engine) setExpiry(old *expiry, key, timeout string, deadline int64) *expiry {
	if deadline == 0 {
		if old != nil {
			e.heap.remove(int(old.idx))
		}
		return nil
	}
	x := newExpiry(key, e.timeouts.intern(timeout, deadline), deadline)
	if old != nil {
		e.heap.replace(int(old.idx), x)
	} else {
		e.heap.push(x)
	}
	return x
}

// remove deletes key if present.
func (e *Engine) remove(key string) {
	s := e.tab.shard(key)
	if en, ok := s.m[key]; ok {
		e.removeEntry(s, key, en)
	}
}

// removeEntry deletes key, found in s as en.
func (e *Engine) removeEntry(s *shard, key string, en entry) {
	delete(s.writable(), key)
	if en.exp != nil {
		e.heap.remove(int(en.exp.idx))
	}
	e.keys.Add(-1)
	e.bytes.Add(-int64(len(key) + len(en.val)))
}
