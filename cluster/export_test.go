package cluster

import (
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// ForwardStats reports the write batches this node has forwarded to any
// leader, the writes they carried, and the batches under way now.
func ForwardStats(n *Node) (batches, events uint64, inflight int) {
	n.peers.bmu.Lock()
	defer n.peers.bmu.Unlock()
	for _, b := range n.peers.batchers {
		batches += b.batches.Load()
		events += b.events.Load()
		b.mu.Lock()
		inflight += b.inflight
		b.mu.Unlock()
	}
	return batches, events, inflight
}

// SetPeerVersion records the log version a member at addr reported, as a
// Ping would.
func SetPeerVersion(n *Node, addr string, version int) { n.versions.set(addr, version) }

// BatchesOK reports whether n, leading, writes batch entries.
func BatchesOK(n *Node) bool { return n.batchesOK() }

// Watchers counts the Watch calls n holds.
func Watchers(n *Node) int { return int(n.watchers.Load()) }

// FirstLogIndex is the first index n's raft log still holds.
func FirstLogIndex(n *Node) (uint64, error) { return n.stores.Log.FirstIndex() }

// LogBytes is the payload n's raft log holds: the sum of its entries' data.
func LogBytes(n *Node) (int64, error) {
	first, err := n.stores.Log.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := n.stores.Log.LastIndex()
	if err != nil {
		return 0, err
	}
	var total int64
	var l raft.Log
	for i := first; i <= last && i > 0; i++ {
		if err := n.stores.Log.GetLog(i, &l); err != nil {
			return 0, err
		}
		total += int64(len(l.Data))
	}
	return total, nil
}

// ReconcilePasses counts the membership passes n made as leader.
func ReconcilePasses(n *Node) uint64 { return n.recon.passes.Load() }

// MarkGossipDead makes n's gossip view hold member id dead since an hour
// ago, whatever gossip saw: a view that lags the truth.
func MarkGossipDead(n *Node, id string) {
	g := n.gossip
	g.mu.Lock()
	defer g.mu.Unlock()
	if m, ok := g.members[id]; ok {
		m.state = memberlist.StateDead
		m.since = time.Now().Add(-time.Hour)
	}
}
