// Package harness is kvnode's jepsen-style fault-injection harness: it
// drives a three-node kvnode cluster (docker compose, or local processes
// where docker is missing) through the goridge client while a nemesis kills,
// pauses, partitions and replaces nodes, records every operation, and checks
// the history afterwards:
//
//   - linearizability of the "linearizable" storages with porcupine, writes
//     of unknown outcome counted as possibly applied (they never return);
//   - no acknowledged write lost, on every storage;
//   - every node converges to the same state after the faults heal;
//   - TTL reads agree with the deadlines within a skew bound;
//   - on the bounded storage, a key becomes absent unasked only inside the
//     window of an eviction of it that the cluster's event log recorded.
//
// Every loop is bounded in count and time, and traffic goes only to the
// loopback addresses the cluster publishes.
package harness
