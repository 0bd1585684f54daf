package main

import (
	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/internal/cli"
)

// gossipCounts counts gossip members by state for kvnode_gossip_members;
// nil when the cluster runs without gossip.
func gossipCounts(n *cluster.Node) map[string]int {
	gm := n.GossipMembers()
	if gm == nil {
		return nil
	}
	counts := map[string]int{}
	for _, g := range gm {
		counts[g.State]++
	}
	return counts
}

// leaderRPCAddr is the leader's RPC address as gossip advertises it, made
// dialable: a wildcard listen host (0.0.0.0) is replaced by the host of the
// leader's raft address. "" when unknown.
func leaderRPCAddr(n *cluster.Node) string {
	id, _ := n.Leader()
	if id == "" {
		return ""
	}
	for _, g := range n.GossipMembers() {
		if g.ID == id {
			return cli.DialableRPC(g.RPCAddr, cluster.DialAddr(g.RaftAddr))
		}
	}
	return ""
}
