package memory

import "github.com/kvnode/kvnode/drivers"

// expiryHeap is a binary min-heap of expiry records ordered by (deadline,
// key); every record knows its index so that any key's expiry can be
// replaced or removed in O(log n). The key tie-break makes Expired's order
// a total order that does not depend on the heap's history.
type expiryHeap []*expiry

func less(a, b *expiry) bool {
	return a.deadline < b.deadline || (a.deadline == b.deadline && a.key() < b.key())
}

func (h *expiryHeap) push(x *expiry) {
	i := len(*h)
	x.idx = int32(i) // a heap of 2^31 records would need 64 GiB
	*h = append(*h, x)
	h.up(i)
}

// replace puts x at position i (where the key's previous record was) and
// restores the heap order.
func (h expiryHeap) replace(i int, x *expiry) {
	x.idx = int32(i)
	h[i] = x
	if !h.down(i) {
		h.up(i)
	}
}

func (h *expiryHeap) remove(i int) {
	s := *h
	last := len(s) - 1
	if i != last {
		s[i] = s[last]
		s[i].idx = int32(i)
	}
	s[last] = nil // let the record be collected
	*h = s[:last]
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
}

func (h expiryHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !less(h[i], h[p]) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

// down sifts i towards the leaves and reports whether it moved.
func (h expiryHeap) down(i int) bool {
	start := i
	n := len(h)
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && less(h[r], h[c]) {
			c = r
		}
		if !less(h[c], h[i]) {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > start
}

func (h expiryHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = int32(i)
	h[j].idx = int32(j)
}

// heapify establishes the heap order over records in arbitrary order, in
// O(n).
func (h expiryHeap) heapify() {
	for i, x := range h {
		x.idx = int32(i)
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// Expired returns up to limit keys whose deadline is not after now, earliest
// (then smallest key) first, with Deadline set for an OpExpire. It walks
// only the part of the heap it returns, so it costs O(k log k) for k keys
// and does not modify the heap: reads may run concurrently.
func (e *Engine) Expired(now int64, limit int) ([]drivers.Item, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, drivers.ErrClosed
	}
	h := e.heap
	if limit <= 0 || len(h) == 0 || h[0].deadline > now {
		return nil, nil
	}
	// The k smallest records of a heap are found best-first: a frontier
	// (itself a small heap of indices into h) starts at the root and, each
	// time its minimum is taken, gains that record's children.
	// Capacities are capped: limit is an upper bound, not a likely count.
	out := make([]drivers.Item, 0, min(limit, len(h), 1024))
	frontier := frontierHeap{h: h, idx: make([]int, 0, min(2*limit+1, len(h), 2049))}
	frontier.push(0)
	for len(out) < limit && len(frontier.idx) > 0 {
		i := frontier.pop()
		out = append(out, drivers.Item{Key: h[i].key(), Deadline: h[i].deadline})
		for c := 2*i + 1; c <= 2*i+2 && c < len(h); c++ {
			if h[c].deadline <= now {
				frontier.push(c)
			}
		}
	}
	return out, nil
}

// frontierHeap is a min-heap of positions in h, ordered like h.
type frontierHeap struct {
	h   expiryHeap
	idx []int
}

func (f *frontierHeap) lessAt(a, b int) bool { return less(f.h[f.idx[a]], f.h[f.idx[b]]) }

func (f *frontierHeap) push(i int) {
	f.idx = append(f.idx, i)
	for j := len(f.idx) - 1; j > 0; {
		p := (j - 1) / 2
		if !f.lessAt(j, p) {
			break
		}
		f.idx[j], f.idx[p] = f.idx[p], f.idx[j]
		j = p
	}
}

func (f *frontierHeap) pop() int {
	top := f.idx[0]
	last := len(f.idx) - 1
	f.idx[0] = f.idx[last]
	f.idx = f.idx[:last]
	for j := 0; ; {
		c := 2*j + 1
		if c >= last {
			break
		}
		if r := c + 1; r < last && f.lessAt(r, c) {
			c = r
		}
		if !f.lessAt(c, j) {
			break
		}
		f.idx[j], f.idx[c] = f.idx[c], f.idx[j]
		j = c
	}
	return top
}
