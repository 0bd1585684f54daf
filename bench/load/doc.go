// Package load is kvnode bench's load generator, in the spirit of
// redis-benchmark: Config.Conns connections, each with its own net/rpc
// client over the goridge codec (the code path a PHP worker exercises on
// the server), each sending one request at a time for Config.Duration or
// until Config.Total requests are done. Keys, values and request messages
// are made up front and reused, so the generator allocates nothing per
// request beyond what net/rpc and protobuf decoding do.
//
// Latencies go into a log-linear histogram per worker (stats.go), merged
// at the end into a Result: requests, errors, hits, rates and latency
// quantiles per kind of request, printed by WriteText or as JSON. A run
// whose context ends (Ctrl-C) stops early and still reports what it
// measured. The command's flags are cmd/kvnode's (kvnode bench).
package load
