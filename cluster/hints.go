package cluster

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
)

// Access hints for the lru policy. Reads are served by whichever node a
// client asks, so the leader, which alone chooses victims, does not see
// them. Each follower keeps the keys it served most often since the last
// send (the Space-Saving algorithm over hintSlots counters: every key read
// more often than 1/hintSlots of all reads is sure to be among them, the
// rest compete for the remaining slots) and every hintInterval sends them
// to the leader, which stamps those keys as used now. A send carries at
// most hintSlots keys and hintMaxBytes of them, so a follower sends at
// most about 4 KiB of keys a second however much it reads; a hot set
// larger than that is refreshed in turns, each key less often. Reads on the leader stamp its keys directly. Hints are lost, not
// queued, while no leader is known; a new leader starts from its own
// stamps (the writes it applied and its own reads) and the hints that
// reach it from then on.

const (
	hintInterval = 250 * time.Millisecond
	hintSlots    = 64
	hintMaxBytes = 1 << 10
	// hintTimeout bounds one send; a hint that is late is useless.
	hintTimeout = time.Second
	// maxHintKeys bounds what a leader takes from one call.
	maxHintKeys = 4 * hintSlots
)

// hints counts the keys a follower served since the last send.
type hints struct {
	mu    sync.Mutex
	slots []counted
	index map[hint]int // position in slots
}

type hint struct{ storage, key string }

type counted struct {
	hint
	n int
}

// hinting reports whether reads of e are worth a hint: it evicts by lru
// and this node follows.
func (n *Node) hinting(e drivers.Engine) bool {
	l := e.Stats().Limits
	return l.Policy == drivers.PolicyLRU && l.Bounded() && n.raft.State() != raft.Leader
}

// noteReads adds keys a client read from storage to the sample. A read
// that finds the sample busy skips it: hints are a sample anyway.
func (n *Node) noteReads(storage string, keys []string) {
	h := &n.hints
	if !h.mu.TryLock() {
		return
	}
	defer h.mu.Unlock()
	if h.index == nil {
		h.index = make(map[hint]int, hintSlots)
	}
	for _, k := range keys {
		x := hint{storage, k}
		if i, ok := h.index[x]; ok {
			h.slots[i].n++
			continue
		}
		if len(h.slots) < hintSlots {
			h.index[x] = len(h.slots)
			h.slots = append(h.slots, counted{x, 1})
			continue
		}
		// Space-Saving: the least counted key gives up its slot, and the
		// newcomer inherits its count (an upper bound of its own).
		low := 0
		for i := range h.slots {
			if h.slots[i].n < h.slots[low].n {
				low = i
			}
		}
		delete(h.index, h.slots[low].hint)
		h.index[x] = low
		h.slots[low] = counted{x, h.slots[low].n + 1}
	}
}

// take empties the counters and returns their keys, most read first, up
// to hintMaxBytes of them.
func (h *hints) take() map[string][]string {
	h.mu.Lock()
	slots := h.slots
	h.slots, h.index = nil, nil
	h.mu.Unlock()
	if len(slots) == 0 {
		return nil
	}
	slices.SortFunc(slots, func(a, b counted) int { return b.n - a.n })
	out := map[string][]string{}
	size := 0
	for _, s := range slots {
		if size += len(s.key) + 1; size > hintMaxBytes {
			break
		}
		out[s.storage] = append(out[s.storage], s.key)
	}
	return out
}

// hintLoop sends the sample to the leader every hintInterval.
func (n *Node) hintLoop() {
	defer n.bg.Done()
	t := time.NewTicker(hintInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		keys := n.hints.take()
		if keys == nil || n.raft.State() == raft.Leader {
			continue
		}
		_, addr := n.Leader()
		if addr == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, hintTimeout)
		err := n.peers.hints(ctx, addr, keys)
		cancel()
		if err != nil {
			n.logger.Debug("access hints not sent", "leader", addr, "err", err)
		}
	}
}

// takeHints stamps the keys a follower's clients read as used now, on
// the leader. A node that does not lead ignores them.
func (n *Node) takeHints(hinted map[string][]string) {
	if n.raft.State() != raft.Leader {
		return
	}
	now := n.opts.Clock().UnixNano()
	budget := maxHintKeys
	for name, keys := range hinted {
		e, ok := n.fsm.Engine(name)
		b, evictable := e.(drivers.Evictable)
		if !ok || !evictable {
			continue
		}
		keys = keys[:min(len(keys), budget)]
		budget -= len(keys)
		b.Touch(now, keys)
	}
}
