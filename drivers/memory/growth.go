package memory

import "github.com/kvnode/kvnode/drivers"

// Growth implements drivers.Evictable: how op, applied at op.Now to the
// current state, would change the key count and the usage. Only Set and
// MExpire can grow a storage; every other op reports zero (deletions are
// not credited: the planner must not count on room a racing write may
// take).
func (e *Engine) Growth(op *drivers.Op) (keys, usage int64) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return 0, 0
	}
	return e.growth(op)
}

// growth is Growth for callers holding the lock. A key given twice in one
// op counts once, as its last item, which is the one that stays.
func (e *Engine) growth(op *drivers.Op) (keys, usage int64) {
	if op.Kind != drivers.OpSet && op.Kind != drivers.OpMExpire {
		return 0, 0
	}
	items := op.Items
	var later map[string]struct{}
	if len(items) > linearDedupMax {
		later = make(map[string]struct{}, len(items))
	}
	for i := len(items) - 1; i >= 0; i-- {
		it := &items[i]
		if overridden(items, i, later) {
			continue
		}
		p, found := e.tab.find(e.st.slabs, it.Key)
		var old int64
		if found {
			en := p.entry()
			old = drivers.EntryUsage(len(it.Key), len(p.val), en.exp != nil)
			if op.Kind == drivers.OpMExpire && !en.visible(op.Now) {
				continue // MExpire ignores expired keys
			}
		}
		gone := drivers.Expired(it.Deadline, op.Now)
		switch {
		case op.Kind == drivers.OpMExpire && !found:
		case op.Kind == drivers.OpMExpire && gone:
			keys--
			usage -= old
		case op.Kind == drivers.OpMExpire:
			usage += drivers.EntryUsage(len(it.Key), len(p.val), it.Deadline != 0) - old
		case gone && found:
			keys--
			usage -= old
		case gone:
		case found:
			usage += drivers.EntryUsage(len(it.Key), len(it.Value), it.Deadline != 0) - old
		default:
			keys++
			usage += drivers.EntryUsage(len(it.Key), len(it.Value), it.Deadline != 0)
		}
	}
	return keys, usage
}

// overridden reports whether items[i]'s key is given again after i. Items
// are visited from the last; later records the keys seen, for long lists.
func overridden(items []drivers.Item, i int, later map[string]struct{}) bool {
	k := items[i].Key
	if later == nil {
		for j := i + 1; j < len(items); j++ {
			if items[j].Key == k {
				return true
			}
		}
		return false
	}
	if _, ok := later[k]; ok {
		return true
	}
	later[k] = struct{}{}
	return false
}
