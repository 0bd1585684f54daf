// Command kvnode serves RoadRunner's KV RPC API (service "kv" over goridge
// v3 frames) from memory, boltdb, redis and memcached storages, so PHP
// applications using spiral/roadrunner-kv work unchanged.
//
// Usage:
//
//	kvnode                      serve with the embedded default configuration
//	kvnode serve -c .rr.yaml    serve the storages of an RoadRunner config file
//	kvnode serve -o rpc.listen=tcp://127.0.0.1:7001 -o kv.default.driver=memory
//	kvnode get|set|del|has|ttl|expire|clear|bench ...   client verbs
//	kvnode version
//
// The configuration is a superset of RoadRunner's .rr.yaml: version, rpc,
// logs, kv, otel and endure.grace_period are read; every other top-level
// section (http, server, jobs, ...) is ignored, and cluster, metrics and
// status are reserved for later. Scalar values may use ${VAR} and
// ${VAR:-default}; -o key.path=value overrides any value after that.
// Every configuration problem is reported at once, naming the storage and
// field, before anything starts.
package main
