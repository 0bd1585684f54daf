// Package rrplugin is a RoadRunner plugin that adds a kv driver named
// kvnode: RoadRunner's own kv plugin then serves a storage from a kvnode
// cluster, so PHP code keeps using the RPC connection RoadRunner hands its
// workers (RR_RPC) for kv as for everything else.
//
//	kvnode:
//	  addrs: ["tcp://10.0.0.1:6001", "tcp://10.0.0.2:6001", "tcp://10.0.0.3:6001"]
//	kv:
//	  sessions: { driver: kvnode, config: { storage: sessions } }
//
// The plugin lives in its own Go module so that kvnode's main module never
// depends on RoadRunner's tree; it speaks to the cluster with kvnode's
// client package.
//
// # Failover
//
// RoadRunner's storage interface has no context, so every call gets one
// with the configured timeout. Calls go to one node at a time (the first
// address that works) and move to the next only when the failure proves the
// call did nothing: the connection could not be made, or the node answered
// "no leader: ..., retry". A call that was sent and then lost (connection
// broken, timeout) is never sent again: it may have been applied, and
// sending it twice could undo a later write. PHP gets it as an error saying
// "outcome unknown".
package rrplugin
