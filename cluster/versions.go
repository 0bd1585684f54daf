package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"

	eventlog "github.com/kvnode/kvnode/log"
)

// A leader writes batch entries (propose.go) only once every member of the
// configuration has reported, through Cluster.Ping, a log version that can
// apply them: during a rolling upgrade an older follower would stop at the
// first batch it cannot decode. Versions are learnt by the leader's version
// loop and by every other Ping (probes, promotions); a member never heard
// from (new, or not answering) keeps batches off until it answers.

// versionPoll is how often a leader asks the members whose version it does
// not know yet (each ask is one Ping; known members are not asked again).
const versionPoll = 500 * time.Millisecond

// peerVersions is what members reported, by raft address (an address
// names one incarnation).
type peerVersions struct {
	mu sync.Mutex
	by map[string]int
}

func (v *peerVersions) set(addr string, version int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.by == nil {
		v.by = map[string]int{}
	}
	v.by[addr] = version
}

func (v *peerVersions) get(addr string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.by[addr]
}

// batchesOK reports whether every other member of the configuration can
// apply batch entries.
func (n *Node) batchesOK() bool {
	for _, s := range n.configServers() {
		if string(s.ID) != n.cfg.NodeID && n.versions.get(string(s.Address)) < eventlog.LogVersion {
			return false
		}
	}
	return true
}

// configServers is the latest raft configuration's servers (raft answers
// from memory, without waiting for its main loop).
func (n *Node) configServers() []raft.Server {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	return f.Configuration().Servers
}

// versionLoop asks, while this node leads, every member whose version it
// does not know.
func (n *Node) versionLoop() {
	defer n.bg.Done()
	t := time.NewTicker(versionPoll)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if !n.IsLeader() {
			continue
		}
		for _, s := range n.configServers() {
			if string(s.ID) == n.cfg.NodeID || n.versions.get(string(s.Address)) >= eventlog.LogVersion {
				continue
			}
			_, _ = n.ping(n.ctx, string(s.Address)) // records the version
		}
	}
}
