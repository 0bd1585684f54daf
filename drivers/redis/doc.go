// Package redis is the pass-through redis storage: every Store call becomes
// redis commands sent to a redis server, sentinel group or cluster, with no
// state kept in kvnode and nothing replicated through raft.
//
// The client is go-redis' UniversalClient, chosen from the configuration the
// way RoadRunner's redis driver does: master_name selects sentinel failover,
// several addrs select a cluster, one addr a single node. Connections are
// opened lazily, so a storage whose server is down still starts.
//
// Semantics:
//
//   - Has and MGet cost one round trip for all keys: a pipeline of EXISTS,
//     and one MGET on a single node (a pipeline of GETs on a cluster, which
//     go-redis splits per node).
//   - Set and MExpire run in one MULTI/EXEC transaction, so a multi-item
//     write is all or nothing. An item with a deadline is stored with PXAT;
//     one whose deadline already passed is deleted, as kvnode treats it as
//     expired at once; one without a deadline is a plain SET, which also
//     clears an older TTL. PXAT needs redis 6.2 or later.
//   - In cluster mode redis cannot run a transaction across hash slots: a
//     multi-item Set or MExpire whose keys hash to different slots fails
//     with go-redis' ErrCrossSlot and writes nothing. Keys that must be
//     written together can share a slot through a {hash tag}.
//   - TTL cannot echo the timeout string as sent (redis keeps only the
//     expiry time): it reports now + PTTL rounded to whole seconds in UTC,
//     as RoadRunner does, and "" for keys without expiry.
//   - Clear is FLUSHDB (on every master in cluster mode): it removes every
//     key of the database, not only keys written through kvnode.
//
// Every call honours its context: go-redis bounds socket I/O by the
// context's deadline, and a call whose context is cancelled returns at once
// with the context's error (a write may still reach redis in that case, as
// with any timed-out network call).
package redis
