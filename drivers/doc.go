// Package drivers defines the storage contracts every kvnode storage keeps,
// and the standalone wrapper that serves a replicable engine on a single node.
//
// There are two contracts:
//
//   - Store is what the RPC layer calls. It takes a context, works on items
//     whose timeouts were already validated and parsed, and may talk to a
//     network service (redis, memcached) or to raft (cluster mode).
//   - Engine is a passive, deterministic state machine (memory, boltdb). It
//     never reads the wall clock and starts no goroutine or timer: every read
//     takes "now" and every write is an Op carrying its own "now". The same
//     sequence of Ops therefore yields byte-identical state on every node,
//     which is what lets a raft FSM replay them.
//
// EngineStore turns an Engine into a Store through a Committer, the one
// part that differs between one node and a cluster: Standalone's group commit
// (standalone.go), or the raft log (package cluster). Writes get their time from
// a Stamper (clock.go) and expired keys are removed by Sweep (sweep.go),
// the same code in both.
//
// Driver describes one driver to the program serving it: its name, its
// settings, how a storage is opened (and, for a replicable driver, its
// Engine), and the capabilities callers would otherwise test by name
// (RoadRunner's error prefix, a refused TTL, inline serving, bounds, a
// file of its own). Each driver package returns its own from a Driver
// function; the command lists them in one Registry, built explicitly, so a
// new driver is its package plus one entry there.
package drivers
