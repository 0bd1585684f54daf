// Package ops is kvnode's operations endpoint: an HTTP server with
// /health (the process is alive), /ready (the node knows a leader and has
// caught up with it) and /metrics (Prometheus text format), and the
// metrics registry behind it.
//
// # Metrics
//
// Every metric is named kvnode_* and lives in a private registry (never
// the global DefaultRegisterer), together with the Go runtime and process
// collectors. Metrics fed by events:
//
//	kvnode_rpc_requests_total{method,storage}           calls served (kv.* and kvnode.*)
//	kvnode_rpc_request_duration_seconds{method,storage} their latency (histogram)
//	kvnode_rpc_errors_total{method,storage,kind}        failed calls by kind: no_such_storage,
//	                                                     bad_request, no_leader, outcome_unknown,
//	                                                     not_linearizable, timeout, shutdown,
//	                                                     internal, other
//	kvnode_fsm_apply_duration_seconds                   time to apply one batch of log entries
//	kvnode_fsm_applied_entries_total                    log entries applied
//	kvnode_raft_apply_latency_seconds                   leader append to applied here, per command
//	kvnode_snapshots_total{result}                      snapshots persisted (ok, error)
//	kvnode_snapshot_duration_seconds                    time to persist one
//	kvnode_snapshot_restores_total{result}              snapshots restored (installed or backups)
//
// Metrics read at scrape time from the node (see State):
//
//	kvnode_raft_term, kvnode_raft_commit_index, kvnode_raft_applied_index,
//	kvnode_raft_last_log_index, kvnode_fsm_applied_index  gauges
//	kvnode_raft_leader_changes_total                    leaders seen since start
//	kvnode_raft_state{state}                            1 for the current raft state
//	kvnode_raft_has_leader                              1 when a leader is known
//	kvnode_storage_keys{storage,driver}                 keys held (expired, unswept included)
//	kvnode_storage_bytes{storage,driver}                bytes of keys and values held
//	kvnode_gossip_members{state}                        gossip members by state
//	kvnode_ready                                        what /ready answers, as 0 or 1
//	kvnode_build_info{version}                          always 1
//
// The storage label only takes configured storage names: a call naming an
// unknown storage is counted under storage="", so clients cannot grow the
// number of series.
package ops
