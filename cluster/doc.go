// Package cluster turns the replicated storages (memory, boltdb) of several
// kvnode processes into one state with hashicorp/raft.
//
// Every write becomes an event (package log) that the leader stamps with its
// clock and appends to the raft log; the FSM (package fsm) applies it on
// every node. A follower forwards writes to the leader over the same TCP port
// raft uses (a one-byte header picks raft or forwarding, see mux.go) and
// answers once the write is committed; every later read on that node waits
// until it has applied it, so a client always reads its own writes on the
// node it talks to.
//
// Reads are served from the node's own state. With consistency
// "linearizable" the node first learns the leader's commit index (ReadIndex:
// the leader confirms it still leads with VerifyLeader) and waits until it
// has applied that far, so no read returns a value older than a write that
// was acknowledged before the read began.
//
// Membership: with cluster.gossip the nodes find each other through
// hashicorp/memberlist from a few seed addresses, bootstrap_expect lets the
// first N of them bootstrap one cluster, and the leader keeps cluster.voters
// voters, adds further nodes as non-voting read replicas, promotes a replica
// when a voter dies and removes members dead longer than reap_after. Gossip
// is encrypted with a shared key and the cluster port can require mutual
// TLS. DESIGN.md explains the rules and why bootstrap cannot form two
// clusters.
//
// Errors say what the client may assume: ErrNoLeader means nothing was
// applied and the write may be retried; ErrOutcomeUnknown means leadership
// was lost (or the deadline passed) after the write was proposed, so it may
// or may not have been applied.
package cluster
