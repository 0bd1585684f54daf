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
// reads and writes frames itself instead: goridge's codec slices the payload
// with an unchecked method length and allocates whatever length a header
// declares (one malformed frame can crash or starve the process), and
// net/rpc's reflection, per-request goroutine and the codec's three read
// syscalls per frame made the RoadRunner design about half as fast as this
// one (see BenchmarkServer_* and the package README numbers in the report).
// Each frame header is validated (version, header length, CRC, payload size
// against Config.MaxFrameSize, method length) before its payload is read;
// an invalid frame closes that connection only.
//
// # Requests
//
// Every request is validated whole before its Store is called: storage name,
// blank keys (in Set too), RFC 3339 timeouts. One bad item fails the call and
// nothing changes. Errors carry RoadRunner's exact texts (errors.go), which
// the PHP client matches on.
package rpc
