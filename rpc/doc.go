// Package rpc serves the kv storages over goridge v3 frames, wire-compatible
// with RoadRunner's rpc and kv plugins, so that spiral/roadrunner-kv (PHP)
// and goridge's Go client work against kvnode unchanged.
//
// # Wire
//
// Every request is one goridge v3 frame: a 12-byte header, two options
// (sequence id, method-name length) and a payload holding the method name
// ("kv.Has") followed by a kv.v1.Request encoded with the codec named in the
// flags byte (proto or JSON). Every reply is a frame of the same shape with
// the request's sequence id, only the chosen codec bit set (plus ERROR for an
// error, whose text then follows the method name), and the encoded
// kv.v1.Response. Requests on one connection run concurrently and may be
// answered out of order, exactly as RoadRunner's net/rpc server does.
//
// # Why not net/rpc
//
// RoadRunner serves each connection with net/rpc and goridge's codec. kvnode
// reads and writes frames itself instead, for two reasons:
//
//   - Safety. goridge's codec slices the payload with an unchecked method
//     length (a panic that net/rpc does not recover: the whole process
//     dies) and allocates whatever payload length a header declares (up to
//     4 GiB per frame). Here each header is validated (version, two options,
//     CRC, payload size against Config.MaxFrameSize, method length) before
//     the payload is read; an invalid frame closes that connection only.
//   - Speed. The codec reads every frame with three syscalls, allocates
//     about twenty objects per call and dispatches through reflection and a
//     goroutine per request. This server reads a whole frame with one
//     buffered read, decodes the common kv.v1.Request shape without building
//     messages, encodes replies by hand and, for Storage.Inline stores,
//     serves a request on the goroutine that read it. Measured with goridge's
//     Go client on 16 loopback connections (BenchmarkServer_*, 2 cores), the
//     client and this server together spend about 25 µs of CPU per 1-key
//     memory Set or MGet, against about 35 µs with net/rpc + goridge's codec
//     over the same storage and about 43 µs against RoadRunner v2025.1.15
//     itself (bench/rrserver). The server's own share is mostly the one
//     write syscall of the reply.
//
// # Requests
//
// Every request is validated whole before its Store is called: storage name,
// blank keys (in Set too), RFC 3339 timeouts. One bad item fails the call and
// nothing changes. Errors carry RoadRunner's exact texts (errors.go), which
// the PHP client matches on.
//
// # Hostile clients
//
// What a connection can make the server hold is bounded, so that one client
// cannot take memory or connections from the others (docs/security.md lists
// each attack and its test):
//
//   - a request has at most Config.MaxItems items, counted before any is
//     built; items after a blank key are not kept; a large request's item
//     array is sized once and not kept in the pool afterwards. Decoding
//     allocates about the frame's size (the frame itself) and at most
//     MaxItems items.
//   - a frame must arrive whole within FrameTimeout of the server waiting
//     for it, however slowly its bytes trickle in.
//   - replies encoded and not yet written are bounded per connection by
//     MaxReplyBacklog: the server reserves a reply's size before encoding
//     it, and stops reading a connection's requests while its backlog is
//     full; a reply the socket cannot take at once must be taken within
//     WriteTimeout, or the connection closes.
//   - at most MaxConnections connections are open; more are closed as soon
//     as they are accepted.
//   - an unknown method name is repeated in the reply up to 256 bytes, and a
//     reply too large for the frame's 32-bit length is an error reply.
//
// # The kvnode admin service
//
// With Config.Admin set, the same listener also serves kvnode's own
// service, "kvnode": Status, Health, and backups as chunked sessions
// (SnapshotOpen, SnapshotRead, SnapshotClose; RestoreBegin, RestoreWrite,
// RestoreCommit, RestoreAbort), no chunk above MaxChunk so frames stay far
// below max_frame_size. Arguments and replies are gob (what goridge's Go
// client sends for non-protobuf values) or JSON, answered in the request's
// codec. Sessions idle for two minutes are closed; one restore runs at a
// time.
//
// The calls that export or replace data (every kvnode.* method but Status
// and Health) require Config.AdminToken when it is set: it travels in the
// arguments (AdminAuth), and is compared in constant time. Without a token,
// Listen refuses any address but loopback and unix sockets
// (ErrInsecureAdmin). kv.* stays unauthenticated, as in RoadRunner (the PHP
// client cannot send credentials), and so does kv.Clear: expose the port
// only to trusted clients. Every admin call is logged with the client's
// address.
package rpc
