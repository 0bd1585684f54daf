package memory

import (
	"math/rand/v2"
	"sync/atomic"
	"unsafe"

	"github.com/kvnode/kvnode/drivers"
)

// Recency for the lru policy, as Redis keeps it: a 32-bit stamp per key of
// when it was last used, in units of 2^20 ns (about a millisecond), so it
// wraps after 52 days: across a wrap, a key used just before it looks
// older than one used after, which costs it nothing but its place. 0 means
// never seen on this node (after a restore or restart): the oldest.
//
// Stamps are node-local: a write stamps the key with its Op.Now on every
// node, reads (Has, MGet) and access hints (Touch) with the reader's clock
// on the node that serves them. Only the leader's stamps decide anything,
// by which keys it proposes to evict; followers keep theirs for when they
// lead. They are not part of snapshots or Hash.

const stampShift = 20

func stampOf(now int64) uint32 {
	s := uint32(uint64(now) >> stampShift) // wraps by design
	if s == 0 {
		s = 1
	}
	return s
}

// stamp records a use of the key at p by the engine's writer (write lock
// held).
func (s *shard) stamp(i int, v uint32) {
	if s.stamps == nil {
		s.stamps = make([]uint32, len(s.slots))
	}
	s.stamps[i] = v
}

// touch records a use of the key at slot i by a reader (read lock held):
// an atomic store, skipped when the stamp is already current so that
// readers of one hot key do not fight over its cache line.
func (s *shard) touch(i int, v uint32) {
	if s.stamps == nil {
		return // allocated by the next write
	}
	p := &s.stamps[i]
	if atomic.LoadUint32(p) != v {
		atomic.StoreUint32(p, v)
	}
}

// touchFound records a read of a found key when the engine keeps recency.
// Callers hold the read lock.
func (e *Engine) touchFound(p *pos, now int64) {
	if e.lru {
		p.s.touch(p.i, stampOf(now))
	}
}

// Touch records that keys were used at now (access hints from other nodes),
// for the lru policy; it changes no replicated state and is a no-op for
// other policies.
func (e *Engine) Touch(now int64, keys []string) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed || !e.lru {
		return
	}
	for _, k := range keys {
		if p, ok := e.tab.find(e.st.slabs, k); ok {
			p.s.touch(p.i, stampOf(now))
		}
	}
}

// Candidates implements drivers.Evictable: up to n keys the leader may
// evict under policy, appended to dst. For PolicyTTL they are the keys with
// the nearest deadlines, nearest first (skip of them left out, so that a
// planner can step past keys it already chose); otherwise keys sampled at
// random, for PolicyLRU with their stamps, only those older than before,
// and without digests.
func (e *Engine) Candidates(policy drivers.Policy, n, skip int, before uint32, dst []drivers.Candidate) []drivers.Candidate {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed || n <= 0 {
		return dst
	}
	if policy == drivers.PolicyTTL {
		return e.soonest(n, skip, dst)
	}
	keys := e.keys.Load()
	if keys == 0 {
		return dst
	}
	for range min(int64(n), keys) {
		p, ok := e.sample()
		if !ok {
			break
		}
		if policy != drivers.PolicyLRU {
			dst = append(dst, e.candidate(p.s.slots[p.i], p.entry()))
			continue
		}
		var stamp uint32
		if p.s.stamps != nil {
			stamp = atomic.LoadUint32(&p.s.stamps[p.i])
		}
		if before != 0 && stamp >= before {
			continue // younger than every candidate the planner keeps
		}
		dst = append(dst, drivers.Candidate{Stamp: stamp, Ref: e.ref(&p)})
	}
	return dst
}

// ref locates a sampled key for Resolve: the slot's content (its record's
// location, which a write changes) and the slot's shard and index.
func (e *Engine) ref(p *pos) [2]uint64 {
	si := (uintptr(unsafe.Pointer(p.s)) - uintptr(unsafe.Pointer(&e.tab.shards[0]))) / unsafe.Sizeof(shard{}) //nolint:gosec // G103: sample takes p.s from e.tab.shards
	return [2]uint64{p.s.slots[p.i], uint64(si)<<48 | uint64(p.i)}
}

// Resolve implements drivers.Evictable: the key at c.Ref, if the slot
// still holds the record it held when sampled (a write of the key moves
// its record; a grown table moves its slots), with its digest and stamp.
func (e *Engine) Resolve(c drivers.Candidate) (drivers.Candidate, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	si, i := c.Ref[1]>>48, int(c.Ref[1]&(1<<48-1)) // as ref packed them
	if e.closed || si >= numShards {
		return drivers.Candidate{}, false
	}
	s := &e.tab.shards[si]
	if i >= len(s.slots) || s.slots[i] != c.Ref[0] || c.Ref[0] == 0 {
		return drivers.Candidate{}, false
	}
	p := pos{s: s, i: i}
	out := e.candidate(s.slots[i], p.entry())
	out.Ref = c.Ref
	if s.stamps != nil {
		out.Stamp = atomic.LoadUint32(&s.stamps[i])
	}
	return out, true
}

// Peek returns key as a candidate, its stamp included.
func (e *Engine) Peek(key string, now int64) (drivers.Candidate, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return drivers.Candidate{}, false
	}
	p, ok := e.tab.find(e.st.slabs, key)
	if !ok {
		return drivers.Candidate{}, false
	}
	c := e.candidate(p.s.slots[p.i], p.entry())
	if p.s.stamps != nil {
		c.Stamp = atomic.LoadUint32(&p.s.stamps[p.i])
	}
	return c, true
}

func (e *Engine) candidate(slot uint64, en entry) drivers.Candidate {
	l := slotLoc(slot)
	key, val := e.st.at(l)
	_, deadline := en.ttl()
	return drivers.Candidate{
		Victim: drivers.Victim{Key: key, Deadline: deadline, Digest: drivers.ValueDigest(valueBytes(val))},
		Usage:  drivers.EntryUsage(len(key), len(val), deadline != 0),
	}
}

// sample returns a key chosen about uniformly at random: a random slot of a
// random shard, or the next occupied one after it. Shards hold about equal
// numbers of keys, and a key's chance grows with the empty slots before it,
// which is random too. Callers hold the read lock.
func (e *Engine) sample() (pos, bool) {
	start := rand.IntN(numShards) //nolint:gosec // sampling, not security
	for k := range numShards {
		s := &e.tab.shards[(start+k)%numShards]
		if s.n == 0 {
			continue
		}
		n := len(s.slots)
		i := rand.IntN(n) //nolint:gosec // see above
		for s.slots[i] == 0 {
			if i++; i == n {
				i = 0
			}
		}
		return pos{s: s, i: i}, true
	}
	return pos{}, false
}

// soonest appends the n keys after the first skip with the nearest
// deadlines, nearest first, walking the expiry heap best-first as Expired
// does. Callers hold the read lock.
func (e *Engine) soonest(n, skip int, dst []drivers.Candidate) []drivers.Candidate {
	h := e.heap
	if len(h) == 0 {
		return dst
	}
	want := n + skip
	frontier := frontierHeap{h: h, idx: make([]int, 0, min(2*want+1, len(h)))}
	frontier.push(0)
	for seen := 0; seen < want && len(frontier.idx) > 0; seen++ {
		i := frontier.pop()
		if seen >= skip {
			x := h[i]
			p, ok := e.tab.find(e.st.slabs, x.key())
			if ok {
				dst = append(dst, e.candidate(p.s.slots[p.i], p.entry()))
			}
		}
		for c := 2*i + 1; c <= 2*i+2 && c < len(h); c++ {
			frontier.push(c)
		}
	}
	return dst
}
