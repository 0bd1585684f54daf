// Package failpoint lets the jepsen harness inject faults that a FROM
// scratch container cannot get from outside: a clock offset, a slow raft
// log, a lagging state machine.
//
// The code that injects them exists only in a build with the failpoint tag
// (on.go): there an HTTP endpoint, bound to the address in
// KVNODE_FAILPOINT_ADDR, sets and clears named failpoints, as etcd's gofail
// does:
//
//	PUT    /fsm-apply        body "sleep(50ms)"   each state machine batch waits 50 ms
//	PUT    /raft-store-logs  body "sleep(20ms)"   each raft log write waits 20 ms
//	PUT    /clock            body "offset(-3s)"   the node's clock runs 3 s behind
//	DELETE /NAME                                  clears one
//	GET    /                                      lists what is set
//
// In every other build (off.go) the hooks are empty functions the compiler
// inlines away, Now is time.Now and Serve does nothing: a release binary
// holds neither the endpoint nor the registry (TestNormalBuildHasNoFailpoints).
// The registry of the failpoint build is package state, so that call sites
// in fsm and log need no plumbing in the normal build.
package failpoint

// Names of the failpoints and what each does when set.
const (
	// FSMApply: sleep(d) before the state machine applies each batch.
	FSMApply = "fsm-apply"
	// RaftStoreLogs: sleep(d) before each write to the raft log.
	RaftStoreLogs = "raft-store-logs"
	// Clock: offset(d) added to the clock kvnode stamps writes and judges
	// expiry by.
	Clock = "clock"
)
