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
// A bounded engine (OpLimit) checks every Set and MExpire against its
// limits under the lock, by the exact change it would make (Growth): one
// that would pass them fails whole with drivers.ErrFull, so usage never
// exceeds the limits at any applied index.
//
// The engine copies keys and values into its slabs and keeps no reference
// to any Item.Value; it may keep a reference to an Item.Key string.
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
	killed := e.st.killed
	for i := range ops {
		if errs[i] == nil {
			errs[i] = e.apply(&ops[i])
		}
	}
	if k := e.st.killed - killed; k > 0 {
		e.compact(e.st.work()*k + compactionSlack)
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
	case drivers.OpEvict:
		for i := range op.Victims {
			if drivers.BlankKey(op.Victims[i].Key) {
				return fmt.Errorf("memory: %s victim %d: %w", op.Kind, i, drivers.ErrEmptyKey)
			}
		}
	case drivers.OpLimit:
		l := op.Limits
		if l.MaxBytes < 0 || l.MaxKeys < 0 || l.Policy > drivers.PolicyRandom {
			return fmt.Errorf("memory: %w: %+v", drivers.ErrBadLimit, l)
		}
	case drivers.OpClear:
	default:
		return fmt.Errorf("memory: op kind %d: %w", op.Kind, drivers.ErrUnknownOp)
	}
	return nil
}

// apply performs a validated op. Only a bounded engine's limit check can
// refuse it, before anything changes. Callers hold the write lock.
func (e *Engine) apply(op *drivers.Op) error {
	switch op.Kind {
	case drivers.OpSet:
		if err := e.checkRoom(op); err != nil {
			return err
		}
		stamp := stampOf(op.Now)
		for i := range op.Items {
			it := &op.Items[i]
			if drivers.Expired(it.Deadline, op.Now) {
				// Already expired: PSR-16 says a TTL of zero or less removes it.
				e.remove(it.Key)
				continue
			}
			e.put(it.Key, it.Value, it.Timeout, it.Deadline, stamp)
		}
	case drivers.OpMExpire:
		if err := e.checkRoom(op); err != nil {
			return err
		}
		for i := range op.Items {
			it := &op.Items[i]
			p, ok := e.tab.find(e.st.slabs, it.Key)
			if !ok {
				continue
			}
			en := p.entry()
			if !en.visible(op.Now) {
				continue
			}
			if drivers.Expired(it.Deadline, op.Now) {
				e.removeAt(&p, it.Key, en)
				continue
			}
			// The record is unchanged; only the expiry record is replaced.
			p.set(p.l, e.setExpiry(en.exp, it.Key, it.Timeout, it.Deadline))
		}
	case drivers.OpDelete:
		for _, k := range op.Keys {
			e.remove(k)
		}
	case drivers.OpClear:
		// Fresh maps and slabs return the old ones' memory to the runtime;
		// snapshots still holding them are unaffected.
		e.tab.reset()
		e.st = newStore(e.st.slabSize)
		e.st.tight = e.limits.MaxBytes > 0
		e.heap = nil
		e.keys.Store(0)
		e.bytes.Store(0)
		e.expires.Store(0)
	case drivers.OpExpire:
		for i := range op.Items {
			it := &op.Items[i]
			// Compare-and-delete: a key re-set or re-expired after the
			// sweeper saw it has a different deadline and survives.
			p, ok := e.tab.find(e.st.slabs, it.Key)
			if !ok {
				continue
			}
			if en := p.entry(); en.exp != nil && en.exp.deadline == it.Deadline {
				e.removeAt(&p, it.Key, en)
			}
		}
	case drivers.OpEvict:
		e.lastEvict = max(e.lastEvict, op.Seq)
		for i := range op.Victims {
			v := &op.Victims[i]
			p, ok := e.tab.find(e.st.slabs, v.Key)
			if !ok {
				continue
			}
			en := p.entry()
			if _, d := en.ttl(); d == v.Deadline && drivers.ValueDigest(valueBytes(en.val)) == v.Digest {
				e.removeAt(&p, v.Key, en)
				e.evicted.Add(1)
			}
		}
	case drivers.OpLimit:
		return e.setLimits(op.Limits)
	}
	return nil
}

// checkRoom refuses a Set or MExpire that would take a bounded engine past
// its limits. A write that frees room or changes nothing is always let
// through, so a storage whose limit is lowered below its contents (which
// OpLimit refuses, but a restored snapshot may carry) can still shrink.
func (e *Engine) checkRoom(op *drivers.Op) error {
	l := e.limits
	if !l.Bounded() {
		return nil
	}
	dk, du := e.growth(op)
	keys, usage := e.keys.Load()+dk, e.usage()+du
	if (dk <= 0 && du <= 0) || !l.Over(keys, usage) {
		return nil
	}
	e.rejected.Add(1)
	if l.MaxKeys > 0 && keys > l.MaxKeys {
		return fmt.Errorf("%w: the write needs %d more keys, over max_keys %d (eviction %s)",
			drivers.ErrFull, dk, l.MaxKeys, l.Policy)
	}
	return fmt.Errorf("%w: the write needs %d more bytes, over max_memory %s (eviction %s)",
		drivers.ErrFull, du, drivers.FormatBytes(l.MaxBytes), l.Policy)
}

// setLimits installs l unless the engine already holds more than l allows.
func (e *Engine) setLimits(l drivers.Limits) error {
	if l.Over(e.keys.Load(), e.usage()) {
		return fmt.Errorf("%w: holds %d keys using %d bytes, more than %s allows: evict first",
			drivers.ErrFull, e.keys.Load(), e.usage(), l)
	}
	e.limits = l
	e.lru = l.Policy == drivers.PolicyLRU && l.Bounded()
	e.st.tight = l.MaxBytes > 0
	e.published.Store(&l)
	return nil
}

// put stores key with a new value and expiry (deadline 0 = none), replacing
// whatever was there, and stamps it as used. The value is copied into a
// slab.
func (e *Engine) put(key string, val []byte, timeout string, deadline int64, stamp uint32) {
	p, ok := e.tab.find(e.st.slabs, key)
	var old *expiry
	if ok {
		old = p.entry().exp
		e.bytes.Add(int64(len(val) - len(p.val)))
		e.st.kill(p.l, p.size)
	} else {
		e.keys.Add(1)
		e.bytes.Add(int64(len(key) + len(val)))
	}
	l := e.st.put(key, val)
	x := e.setExpiry(old, key, timeout, deadline)
	if ok {
		p.set(l, x)
	} else {
		p.insert(l, x)
	}
	if e.lru {
		p.s.stamp(p.i, stamp)
	}
}

// setExpiry replaces the expiry record old (nil = none) with a new one for
// deadline (0 = none), keeping the heap in step, and returns the new record.
// Records are never modified in place because snapshots share them.
func (e *Engine) setExpiry(old *expiry, key, timeout string, deadline int64) *expiry {
	if deadline == 0 {
		if old != nil {
			e.heap.remove(int(old.idx))
			e.expires.Add(-1)
		}
		return nil
	}
	if old != nil {
		// Keep sharing the key string the old record holds.
		key = old.key()
	}
	x := newExpiry(key, e.timeouts.intern(timeout, deadline), deadline)
	if old != nil {
		e.heap.replace(int(old.idx), x)
	} else {
		e.heap.push(x)
		e.expires.Add(1)
	}
	return x
}

// remove deletes key if present.
func (e *Engine) remove(key string) {
	if p, ok := e.tab.find(e.st.slabs, key); ok {
		e.removeAt(&p, key, p.entry())
	}
}

// removeAt deletes key, found at p as en.
func (e *Engine) removeAt(p *pos, key string, en entry) {
	p.del()
	if en.exp != nil {
		e.heap.remove(int(en.exp.idx))
		e.expires.Add(-1)
	}
	e.st.kill(p.l, p.size)
	e.keys.Add(-1)
	e.bytes.Add(-int64(len(key) + len(en.val)))
}
