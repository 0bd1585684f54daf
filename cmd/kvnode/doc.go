// Command kvnode serves RoadRunner's KV RPC API (service "kv" over goridge
// v3 frames) from memory, boltdb, redis and memcached storages, so PHP
// applications using spiral/roadrunner-kv work unchanged.
//
// Usage:
//
//	kvnode                      serve the embedded default: storage "default" (memory) on tcp://127.0.0.1:6001
//	kvnode serve -c .rr.yaml    serve the kv storages of a RoadRunner config file
//	kvnode -c .rr.yaml -o rpc.listen=tcp://127.0.0.1:7001   flags alone also mean serve
//	kvnode get|set|del|has|ttl|expire|clear|bench ...       client verbs
//	kvnode version
//
// # Configuration
//
// The file is a superset of RoadRunner's .rr.yaml. kvnode reads version
// (must be "3"), rpc (listen, plus kvnode's max_frame_size,
// request_timeout, idle_timeout, frame_timeout, max_in_flight), logs
// (level, mode, encoding, output), kv.<name>.driver and kv.<name>.config (or
// the top-level section <name> when config is absent, as RoadRunner does),
// otel, and endure.grace_period (default 10s). Other sections (http,
// server, jobs, ...) are ignored; cluster, metrics and status are reserved.
//
// Precedence, lowest first: defaults, the file, -o key.path=value
// overrides. ${VAR} and ${VAR:-default} are expanded in each scalar value
// after parsing (RoadRunner expands the raw text), so a variable cannot
// change the file's structure; a bare $ is kept, and an unquoted value is
// re-typed after expansion (permissions: ${PERM:-0644} is a number).
//
// Every problem that stops start-up is reported in one error, each naming
// the storage and field: configuration mistakes, an unknown or missing
// driver, and what only opening reveals (an unreadable boltdb file, an
// address in use). Unknown fields in driver sections are logged as
// warnings. Nothing in a configuration file can panic the process.
//
// boltdb's interval (RoadRunner's GC period) does not delay expiry: expired
// keys are hidden at once. It sets how often they are removed from the
// file when given; otherwise they are removed every second.
//
// SIGINT or SIGTERM stops accepting connections, lets requests in flight
// finish within endure.grace_period, closes the storages and flushes spans.
package main
