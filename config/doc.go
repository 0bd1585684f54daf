// Package config loads kvnode's configuration: a superset of RoadRunner's
// .rr.yaml (version, rpc, logs, kv, otel, endure, metrics, status) plus
// kvnode's cluster section, into a Config the command wires its parts from.
//
// Load reads the file (or the embedded default: one memory storage named
// "default" on tcp://127.0.0.1:6001), expands ${VAR} and ${VAR:-default}
// in each scalar after parsing, applies KVNODE_CLUSTER_* environment
// variables and then -o key.path=value overrides, and decodes every
// section. Precedence, lowest first: defaults, the file, the environment,
// the overrides.
//
// yaml.v3 reports a type mistake without the field's path, which is
// useless in a file with four storages, so sections are decoded here field
// by field over the yaml struct tags (decode.go, tree.go): every problem is
// recorded under its dotted path (kv.files.config.permissions) and all of
// them come back at once as one *Error. Unknown fields in driver sections
// are warnings; sections of other RoadRunner plugins are skipped. Nothing
// in a file can panic the loader.
//
// The config package knows no driver by name. A storage's kv.<name>.driver
// is looked up in the drivers.Registry the program passes in Options; the
// driver's NewConfig gives the struct its section decodes into, and its
// InitDefaults and Validate methods, when present, complete and check it.
// A driver whose settings implement drivers.BoundSettings takes
// max_memory, max_keys and eviction, resolved here into drivers.Limits;
// other drivers refuse those keys with the reason they give.
//
// Read is Load that also hands back the Problems, so that the program can
// add those only opening reveals (an unreadable file, an address in use)
// and stop once with everything. Opening storages, raft and servers is the
// command's job, not this package's.
package config
