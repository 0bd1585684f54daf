package harness

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/client"
)

// The mutation tests feed the checkers histories of broken systems: each
// one passed the checkers before they were fixed (docs/jepsen.md lists the
// blind spots) and must now be rejected. Every history is otherwise
// healthy, so the test also shows which check catches the fault.

// mop builds an operation; by default an acknowledged register op on
// memory_lin through node1.
func mop(f, storage, key, value string, invoke, complete int64, opts ...func(*Op)) Op {
	op := Op{Worker: int(invoke), Node: "node1", Storage: storage, Workload: "register", F: f, Keys: []string{key},
		Value: value, Invoke: invoke, Complete: complete, Status: StatusOK}
	if f == "get" {
		op.Value = ""
		op.Read = map[string]string{}
		if value != absent {
			op.Read[key] = value
		}
	}
	for _, o := range opts {
		o(&op)
	}
	return op
}

// absent as a read's value means the key was not in the reply.
const absent = "<absent>"

func status(s Status) func(*Op) { return func(op *Op) { op.Status = s } }
func on(node string) func(*Op)  { return func(op *Op) { op.Node = node } }
func byClient(w int) func(*Op)  { return func(op *Op) { op.Worker = w } }
func ttl(deadline int64) func(*Op) {
	return func(op *Op) { op.Workload, op.Deadline = "ttl", deadline }
}
func final() func(*Op) { return func(op *Op) { op.Final = true } }

// healthy pads a history with a successful write and read of every
// workload on every storage, so that the coverage check has nothing to say
// about it.
func healthy(ops ...Op) []Op {
	for i, st := range Storages {
		key := "cover-" + st
		t := int64(10_000_000 + i*100)
		g := []string{"gcover/a", "gcover/b", "gcover/c"}
		gset := mop("set", st, "", "gcover-"+st, t, t+10, func(op *Op) { op.Workload, op.Keys = "group", g })
		gget := mop("get", st, "", absent, t+20, t+30, func(op *Op) {
			op.Workload, op.Keys = "group", g
			for _, k := range g {
				op.Read[k] = "gcover-" + st
			}
		})
		ops = append(ops, mop("set", st, key, "cover-"+st, t, t+10), mop("get", st, key, "cover-"+st, t+20, t+30), gset, gget,
			mop("set", st, "tcover", "tcover-"+st, t, t+10, ttl(t+int64(time.Hour))), mop("get", st, "tcover", "tcover-"+st, t+20, t+30, ttl(0)))
	}
	return ops
}

// finalOf is the converged state: every key with its value, by storage.
func finalOf(kv ...string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, st := range Storages {
		out[st] = map[string]string{"cover-" + st: "cover-" + st, "gcover/a": "gcover-" + st, "gcover/b": "gcover-" + st, "gcover/c": "gcover-" + st}
	}
	for i := 0; i+2 < len(kv); i += 3 {
		out[kv[i]][kv[i+1]] = kv[i+2]
	}
	return out
}

func checkOpts() CheckOptions {
	return CheckOptions{TTLSkew: 50 * time.Millisecond, LinTimeout: 10 * time.Second, Storages: Storages}
}

// wantAnomaly runs every history check and fails unless one of the
// anomalies is of kind check and mentions every word of want.
func wantAnomaly(t *testing.T, ops []Op, fin map[string]map[string]string, o CheckOptions, check string, want ...string) {
	t.Helper()
	v := CheckHistory(ops, fin, o)
	for _, a := range v.Anomalies {
		ok := a.Check == check
		for _, w := range want {
			ok = ok && strings.Contains(a.Detail, w)
		}
		if ok {
			return
		}
	}
	t.Fatalf("no %s anomaly mentioning %q; anomalies: %v", check, want, v.Anomalies)
}

// wantClean fails when the history checks report anything.
func wantClean(t *testing.T, ops []Op, fin map[string]map[string]string, o CheckOptions) {
	t.Helper()
	if v := CheckHistory(ops, fin, o); len(v.Anomalies) > 0 {
		t.Fatalf("anomalies in a legal history: %v", v.Anomalies)
	}
}

func TestMutationHealthyHistoryIsClean(t *testing.T) {
	ops := healthy(mop("set", "memory_lin", "k", "a", 0, 10), mop("get", "memory_lin", "k", "a", 20, 30),
		mop("set", "boltdb_local", "k", "b", 0, 10), mop("get", "boltdb_local", "k", "b", 20, 30, on("node2")))
	wantClean(t, ops, finalOf("memory_lin", "k", "a", "boltdb_local", "k", "b"), checkOpts())
}

// A stale read hidden among 16 concurrent writes of unknown outcome that
// nobody read: porcupine used to give up (and giving up passed).
func TestMutationStaleReadAmongUnknownWrites(t *testing.T) {
	ops := []Op{mop("set", "memory_lin", "k", "a", 0, 10), mop("set", "memory_lin", "k", "b", 20, 30)}
	for i := range 16 {
		ops = append(ops, mop("set", "memory_lin", "k", fmt.Sprintf("u%d", i), 15, 16, status(StatusInfo), byClient(100+i)))
	}
	ops = append(ops, mop("get", "memory_lin", "k", "a", 40, 50, byClient(99)))
	o := checkOpts()
	o.LinTimeout = 200 * time.Millisecond
	wantAnomaly(t, healthy(ops...), finalOf("memory_lin", "k", "b"), o, "linearizability", "memory_lin|k")
}

// A history porcupine cannot decide in its budget: every unknown write is
// read, so none can be set aside. Giving up must fail the run and say how
// many writes of unknown outcome the key had.
func TestMutationPorcupineTimeoutFails(t *testing.T) {
	ops := []Op{mop("set", "memory_lin", "k", "a", 0, 10)}
	const n = 22
	for i := range n {
		ops = append(ops, mop("set", "memory_lin", "k", fmt.Sprintf("u%d", i), 15, 16, status(StatusInfo), byClient(100+i)))
	}
	for i := range n {
		ops = append(ops, mop("get", "memory_lin", "k", fmt.Sprintf("u%d", i), int64(100+10*i), int64(105+10*i), byClient(200+i)))
	}
	ops = append(ops, mop("get", "memory_lin", "k", "a", 10_000, 10_010, byClient(99)))
	o := checkOpts()
	o.LinTimeout = 50 * time.Millisecond
	wantAnomaly(t, healthy(ops...), finalOf("memory_lin", "k", "u0"), o, "linearizability-timeout", "memory_lin|k", fmt.Sprintf("%d writes of unknown outcome", n))
}

// A read on a local storage returning a value nobody ever wrote.
func TestMutationLocalReadOfUnwrittenValue(t *testing.T) {
	for _, st := range []string{"memory_local", "boltdb_local"} {
		t.Run(st, func(t *testing.T) {
			ops := healthy(mop("set", st, "k", "a", 0, 10), mop("get", st, "k", "zzz", 20, 30, on("node3")))
			wantAnomaly(t, ops, finalOf(st, "k", "a"), checkOpts(), "read", st, "zzz")
		})
	}
}

// A read of a value whose only write failed (definitely not applied).
func TestMutationReadOfFailedWrite(t *testing.T) {
	ops := healthy(mop("set", "memory_local", "k", "a", 0, 10, status(StatusFail)), mop("get", "memory_local", "k", "a", 20, 30))
	wantAnomaly(t, ops, finalOf(), checkOpts(), "read", "memory_local", `"a"`)
}

// A read that returns a value whose write began only after the read ended.
func TestMutationReadFromTheFuture(t *testing.T) {
	ops := healthy(mop("get", "boltdb_local", "k", "a", 0, 10), mop("set", "boltdb_local", "k", "a", 20, 30))
	wantAnomaly(t, ops, finalOf("boltdb_local", "k", "a"), checkOpts(), "read", "boltdb_local", `"a"`)
}

// The lost-write check skipped keys whose only set failed: a failed
// write that shows up in the final state went unnoticed.
func TestMutationFinalValueOfFailedWrite(t *testing.T) {
	ops := healthy(mop("set", "boltdb_lin", "k", "a", 0, 10, status(StatusFail)))
	wantAnomaly(t, ops, finalOf("boltdb_lin", "k", "a"), checkOpts(), "lost-write", "boltdb_lin", `"a"`)
}

// ... and keys that were only read.
func TestMutationFinalValueOfKeyNeverWritten(t *testing.T) {
	ops := healthy(mop("get", "memory_local", "k", absent, 0, 10))
	wantAnomaly(t, ops, finalOf("memory_local", "k", "zzz"), checkOpts(), "lost-write", "memory_local", `"zzz"`)
}

// "" stood for both absent and present-but-empty: an empty value read
// after an acknowledged delete passed.
func TestMutationEmptyValueAfterDelete(t *testing.T) {
	ops := healthy(mop("set", "memory_lin", "k", "a", 0, 10), mop("del", "memory_lin", "k", "", 20, 30), mop("get", "memory_lin", "k", "", 40, 50))
	wantAnomaly(t, ops, finalOf(), checkOpts(), "linearizability", "memory_lin|k")
}

// Every in-run read of a storage failed: nothing was checked, and the run
// passed.
func TestMutationVacuousStorage(t *testing.T) {
	ops := healthy()
	for i := range ops {
		if ops[i].Storage == "memory_lin" && ops[i].F == "get" {
			ops[i].Status, ops[i].Read, ops[i].ErrKind = StatusFail, nil, "read-not-confirmed"
		}
	}
	wantAnomaly(t, ops, finalOf(), checkOpts(), "coverage", "memory_lin register", "0 successful reads of 1")
}

func ms(n int64) int64 { return n * int64(time.Millisecond) }

// A TTL key whose set failed is read back: the read was skipped.
func TestMutationTTLReadOfFailedSet(t *testing.T) {
	ops := healthy(mop("set", "memory_lin", "t1", "v", 0, ms(10), ttl(ms(1000)), status(StatusFail)),
		mop("get", "memory_lin", "t1", "v", ms(100), ms(110), ttl(0)))
	wantAnomaly(t, ops, finalOf(), checkOpts(), "read", "memory_lin", "t1")
}

// A TTL key absent well before its deadline on a local storage, read on
// the node that acknowledged the set: read-your-writes on that node.
func TestMutationTTLEarlyAbsenceOnAcknowledgingNode(t *testing.T) {
	ops := healthy(mop("set", "boltdb_local", "t1", "v", 0, ms(10), ttl(ms(1000)), on("node2")),
		mop("get", "boltdb_local", "t1", absent, ms(100), ms(110), ttl(0), on("node2")))
	wantAnomaly(t, ops, finalOf(), checkOpts(), "ttl", "boltdb_local", "t1", "node2")
	// Not when node2 restarted in between, as the leader a wipe also killed.
	wipe := Fault{Kind: NemesisWipe, Node: "node3", Also: []string{"node2"}, Start: ms(50), End: ms(90)}
	o := checkOpts()
	o.Faults = []Fault{wipe}
	wantClean(t, ops, finalOf(), o)
	// The same read on another node may lag behind: not an anomaly.
	ops = healthy(mop("set", "boltdb_local", "t1", "v", 0, ms(10), ttl(ms(1000)), on("node2")),
		mop("get", "boltdb_local", "t1", absent, ms(100), ms(110), ttl(0), on("node3")))
	wantClean(t, ops, finalOf(), checkOpts())
}

// The final reads of TTL keys were dropped from the history, so no
// history check saw them; they must reach the TTL and read checks.
func TestMutationFinalReadsKeepTTLKeys(t *testing.T) {
	reads := []Op{mop("get", "memory_local", "t1", "v", ms(3000), ms(3010), final()), mop("get", "memory_local", "r1-0", "a", ms(3000), ms(3010), final())}
	got := finalGroups(reads)
	var kept []string
	for _, op := range got {
		kept = append(kept, op.Workload+":"+op.Keys[0])
	}
	sort.Strings(kept)
	if strings.Join(kept, " ") != "register:r1-0 ttl:t1" {
		t.Fatalf("final reads kept: %v", kept)
	}
}

// Linearizable reads of a TTL key must not go back: once a read that began
// after the set was acknowledged found the key gone, no later read may see
// it again (an expired key reappearing on a node whose clock is behind).
func TestMutationTTLKeyReappears(t *testing.T) {
	o := checkOpts()
	o.TTLSkew = 5 * time.Second // a skew bound so wide that the deadline checks see nothing
	ops := healthy(mop("set", "memory_lin", "t1", "v", 0, ms(10), ttl(ms(1000))),
		mop("get", "memory_lin", "t1", absent, ms(1010), ms(1020), ttl(0), on("node1")),
		mop("get", "memory_lin", "t1", "v", ms(1030), ms(1040), ttl(0), on("node2")))
	wantAnomaly(t, ops, finalOf(), o, "ttl", "memory_lin", "t1", "reappeared")
}

// The server's texts start with the method's prefix and then say what
// happened; a forwarded write's text can quote the leader's answer, which
// must not decide the outcome.
func TestMutationClassifyMatchesTheStart(t *testing.T) {
	se := func(text string) error { return &client.ServerError{Method: "kv.Set", Text: text} }
	cases := []struct {
		text string
		want Status
	}{
		{"rpc_set: outcome unknown: leadership lost or timed out during commit, the write may or may not be applied (leader node2-peer:7000: rpc_set: no leader: write not applied, retry)", StatusInfo},
		{"rpc_set: node is shutting down: outcome unknown: leadership lost or timed out during commit, the write may or may not be applied", StatusInfo},
		{"rpc_set: something else (quoting: no leader: write not applied, retry)", StatusInfo},
		{"rpc_set: no leader: write not applied, retry (no leader known for 1s)", StatusFail},
	}
	for _, tc := range cases {
		if got, _ := Classify(se(tc.text), true); got != tc.want {
			t.Errorf("Classify(%q) = %s, want %s", tc.text, got, tc.want)
		}
	}
}
