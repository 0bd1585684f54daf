package main

import "github.com/kvnode/kvnode/cluster"

// gossipCounts counts gossip members by state for kvnode_gossip_members;
// nil while the cluster runs without gossip.
func gossipCounts(*cluster.Node) map[string]int { return nil }

// leaderRPCAddr is the leader's RPC address as gossip advertises it; ""
// when unknown.
func leaderRPCAddr(*cluster.Node) string { return "" }
