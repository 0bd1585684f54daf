package cluster

// ForwardStats reports the write batches this node has forwarded to any
// leader, the writes they carried, and the batches under way now.
func ForwardStats(n *Node) (batches, events uint64, inflight int) {
	n.fwd.bmu.Lock()
	defer n.fwd.bmu.Unlock()
	for _, b := range n.fwd.batchers {
		batches += b.batches.Load()
		events += b.events.Load()
		b.mu.Lock()
		inflight += b.inflight
		b.mu.Unlock()
	}
	return batches, events, inflight
}

// FirstLogIndex is the first index n's raft log still holds.
func FirstLogIndex(n *Node) (uint64, error) { return n.stores.Log.FirstIndex() }
