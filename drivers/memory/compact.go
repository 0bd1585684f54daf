package memory

import "unsafe"

// Compaction reclaims the space of dead records a little at a time, under
// the write lock at the end of each Apply that killed records, so no single
// Apply pays for a whole slab. Each Apply may look at compactionWork bytes
// of records (plus compactionSlack, for progress with tiny records) per
// byte it killed. A victim chosen when compaction is needed is at most half
// live (see needCompaction), so looking at 2 bytes frees at least 1:
// compaction keeps up with any rate of overwrites and deletes, and the
// slabs hold at most about twice the live bytes (plus a few slabs) in the
// steady state.
const (
	compactionWork      = 2
	compactionWorkTight = 4
	compactionSlack     = 64
)

// compact moves the live records of the emptiest slab to the current one,
// looking at up to budget bytes of records, and drops the slab once it holds
// nothing live. Callers hold the write lock.
func (e *Engine) compact(budget int) {
	st := &e.st
	for budget > 0 {
		if st.victim < 0 {
			if !st.needCompaction() {
				return
			}
			if st.victim = st.pickVictim(); st.victim < 0 {
				return
			}
			st.cursor = 0
		}
		id := st.victim
		b := st.slabs[id]
		for st.cursor < st.meta[id].fill && st.meta[id].live > 0 && budget > 0 {
			off := st.cursor
			key, val, size := record(b, off)
			st.cursor += size
			budget -= size
			e.relocate(key, val, makeLoc(id, off))
		}
		if st.meta[id].live > 0 && st.cursor < st.meta[id].fill {
			return // out of budget; the next Apply resumes here
		}
		st.victim = -1
		if st.meta[id].live == 0 {
			st.drop(id)
			st.compacted++
		}
		// Otherwise the accounting is wrong (a bug): keeping the slab keeps
		// every record readable.
	}
}

// relocate moves key's record to the current slab if the key's record is
// the one at old; otherwise the record is dead and left where it is. key and
// val alias the victim slab, which stays intact until it is dropped.
func (e *Engine) relocate(key, val string, old loc) {
	p, ok := e.tab.find(e.st.slabs, key)
	if !ok || p.l != old {
		return
	}
	l := e.st.put(key, unsafe.Slice(unsafe.StringData(val), len(val))) //nolint:gosec // G103: put only copies the bytes
	e.st.kill(p.l, p.size)
	p.set(l, p.entry().exp)
}
