// Package memcached is the pass-through memcached storage: every Store call
// becomes memcached commands (through github.com/bradfitz/gomemcache), with
// no state kept in kvnode and nothing replicated through raft. With several
// addresses, keys are spread over the servers by hash, as gomemcache does.
//
// Semantics and the limits memcached imposes:
//
//   - Has and MGet are one GetMulti: one round trip per server, in
//     parallel. Has fetches the values too; memcached's classic protocol has
//     no existence check.
//   - Set is NOT atomic across items: memcached has no transactions, so
//     items are written one by one and a failure part-way leaves the earlier
//     items written. Keys are checked before anything is written, so a bad
//     key fails the whole call cleanly. A single item's write is atomic.
//   - Expiry has one-second resolution. A deadline is sent as seconds from
//     now, rounded up, or as an absolute Unix time when it is more than 30
//     days away (memcached's own rule); deadlines past January 2038 are
//     clamped to the largest time memcached accepts. An item whose deadline
//     already passed is deleted instead of written.
//   - MExpire is a TOUCH per key: missing keys are ignored, an item without
//     deadline loses its expiry, a past deadline deletes the key.
//   - TTL is not supported (memcached cannot report expiry times): it
//     returns ErrTTLNotSupported, whose text is RoadRunner's.
//   - Clear is flush_all on every server: it removes every item, not only
//     those written through kvnode.
//   - Keys must be at most 250 bytes without spaces or control characters
//     (ErrMalformedKey); values are limited by the server's item size
//     (1 MiB by default, memcached -I), beyond which ErrValueTooLarge.
//
// Contexts: gomemcache has no context support, so a call checks its context
// before every command it sends and cannot abandon one in flight; each
// command is bounded instead by the configured timeout (default 500ms) for
// dialling and for every socket read and write.
package memcached
