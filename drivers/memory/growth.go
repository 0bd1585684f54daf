package memory

import "github.com/kvnode/kvnode/drivers"

// Growth implements drivers.Evictable: how op, applied at op.Now to the
// current state, would change the key count and the usage. Only Set and
// MExpire can grow a storage; every other op reports zero (deletions are
// not credited: a planner must not count on room a racing write may take).
func (e *Engine) Growth(op *drivers.Op) (keys, usage int64) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return 0, 0
	}
	return e.growth(op)
}

// shadow is what an op has made of a key so far, while growth walks it.
type shadow struct {
	found, ttl bool
	valLen     int
}

// growth is Growth for callers holding the lock. It walks the items in
// order as apply does, keeping what earlier items did to a key in a
// shadow, so a key given twice in one op counts as it ends up.
func (e *Engine) growth(op *drivers.Op) (keys, usage int64) {
	if op.Kind != drivers.OpSet && op.Kind != drivers.OpMExpire {
		return 0, 0
	}
	var seen shadows
	if len(op.Items) == 1 {
		// One item: nothing to shadow, and nothing to allocate for it.
		var sh shadow
		seen.m, seen.one, seen.oneKey = nil, &sh, op.Items[0].Key
	} else if len(op.Items) > linearDedupMax {
		seen.m = make(map[string]*shadow, len(op.Items))
	}
	for i := range op.Items {
		it := &op.Items[i]
		sh := seen.get(it.Key)
		if sh == nil {
			sh = seen.add(it.Key)
			if p, ok := e.tab.find(e.st.slabs, it.Key); ok {
				en := p.entry()
				// MExpire treats an expired key as missing; Set replaces it.
				if op.Kind == drivers.OpSet || en.visible(op.Now) {
					*sh = shadow{found: true, ttl: en.exp != nil, valLen: len(p.val)}
				}
			}
		}
		gone := drivers.Expired(it.Deadline, op.Now)
		var next shadow
		switch {
		case op.Kind == drivers.OpMExpire && !sh.found:
			continue
		case gone:
		case op.Kind == drivers.OpMExpire:
			next = shadow{found: true, ttl: it.Deadline != 0, valLen: sh.valLen}
		default:
			next = shadow{found: true, ttl: it.Deadline != 0, valLen: len(it.Value)}
		}
		if sh.found {
			keys--
			usage -= drivers.EntryUsage(len(it.Key), sh.valLen, sh.ttl)
		}
		if next.found {
			keys++
			usage += drivers.EntryUsage(len(it.Key), next.valLen, next.ttl)
		}
		*sh = next
	}
	return keys, usage
}

// shadows finds the shadow of a key: by scanning a short list, or in a map
// for long ops.
type shadows struct {
	keys []string
	list []shadow
	m    map[string]*shadow
	// one is the shadow of a one-item op, not yet added until oneAdded.
	one      *shadow
	oneKey   string
	oneAdded bool
}

func (s *shadows) get(k string) *shadow {
	if s.one != nil {
		if s.oneAdded && k == s.oneKey {
			return s.one
		}
		return nil
	}
	if s.m != nil {
		return s.m[k]
	}
	for i, x := range s.keys {
		if x == k {
			return &s.list[i]
		}
	}
	return nil
}

func (s *shadows) add(k string) *shadow {
	if s.one != nil {
		s.oneAdded = true
		return s.one
	}
	if s.m != nil {
		sh := &shadow{}
		s.m[k] = sh
		return sh
	}
	s.keys = append(s.keys, k)
	s.list = append(s.list, shadow{})
	return &s.list[len(s.list)-1]
}
