// Package cli holds kvnode's client-side commands, each with its own flags:
// the kv verbs (get, set, del, has, ttl, expire, clear, client_cmds.go),
// status and health, snapshot save/restore/inspect, events, bench (over
// package bench/load), and the offline tls and keygen. Each is a Command's
// Run; cmd/kvnode lists them beside serve, and Run dispatches a command
// line among them with kvnode's exit statuses (0, 1, and 2 for a usage
// error).
//
// The commands talk to a node through package client: the kv service, or
// the kvnode admin service (status.go's adminFlags: address, timeout, and
// the admin token from --token, --token-file or $KVNODE_ADMIN_TOKEN). A
// restore goes only to a node that confirms in its own status that it
// leads (snapshot.go): an address read from an error text is never
// followed.
package cli
