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
//	kvnode status [--rpc ADDR] [--json]                     a node's view of itself and the cluster
//	kvnode health [--rpc ADDR] [--ready]                    exit 0 when the node answers (and is ready)
//	kvnode snapshot save|restore|inspect FILE [--rpc ADDR]  backups of the replicated storages
//	kvnode tls ca [--dir DIR]                              a cluster CA: DIR/ca.pem, DIR/ca-key.pem
//	kvnode tls cert NODE [--dir DIR] [--host HOST]...      a node certificate signed by it: DIR/NODE.pem, DIR/NODE-key.pem
//	kvnode keygen                                          print a gossip encryption key
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
// server, jobs, ...) are ignored. cluster configures replication;
// metrics.address and status.address (RoadRunner's keys, both accepted)
// turn on the HTTP ops endpoint, off by default: /health, /ready and
// /metrics on each address given (see package ops for the metrics).
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
// # Operations
//
// status, health and snapshot talk to the "kvnode" service on the node's RPC
// port. status prints the node id, role, leader, term, commit and applied
// indexes, readiness, and every member with its raft suffrage, gossip
// state, RPC address and last contact (the leader reports heartbeat
// failures; a follower its contact with the leader). health prints
// nothing and exits 0 when the node answers; with --ready it also requires
// a known leader and that the node has applied up to the leader's commit
// index it learnt at start (a standalone node is always ready): fit for a
// docker HEALTHCHECK in an image without a shell.
//
// snapshot save asks the node for a consistent point-in-time snapshot of
// every replicated storage (after waiting for the leader's commit index,
// so it holds every write acknowledged before; --stale skips that) and
// writes it as FILE.tmp, renamed to FILE once complete: a header with the
// node, raft index, term and time, the snapshot stream (with its own
// CRC-64, checked while downloading), and a SHA-256 of the whole file.
// snapshot restore verifies the file, then streams it to the leader (a
// follower names it when gossip knows its RPC address, and the command
// follows), which installs it through raft on every node: the cluster
// then holds exactly the backup's state, storages the backup lacks are
// emptied, and a backup holding a storage the cluster does not replicate
// is refused. It is meant for disaster recovery into a fresh cluster:
// writes in flight are aborted. Transfers of 8 MiB and more show a
// progress line on stderr. A standalone kvnode has no snapshots.
//
// SIGINT or SIGTERM stops accepting connections, lets requests in flight
// finish within endure.grace_period, closes the storages and flushes spans.
//
// # Code
//
// This package is the wiring: main.go lists the commands and the storage
// drivers (storageDrivers, the one place a driver is registered), and
// serve.go assembles a node from a loaded configuration (package config):
// storages (open.go), raft (cluster.go), the RPC server with the admin
// service (admin.go), the ops endpoint (ops.go), logs and tracing
// (package internal/telemetry). The client-side commands live in package
// internal/cli, the load generator in bench/load, the backup file format
// in fsm/backupfile.
package main
