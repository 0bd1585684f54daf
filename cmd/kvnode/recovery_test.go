package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"

	"github.com/kvnode/kvnode/config"
)

// freePorts reserves n loopback ports and frees them for the caller.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var out []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return out
}

// With raft.no_sync, boltdb still fsyncs each batch but the raft log does
// not: after a power loss the storage can be ahead of the log. The node
// used to refuse to start ("belongs to another cluster") and needed hand
// repair; now it moves the suspect state aside, rejoins as a new member
// and catches up.
func TestServe_NoSyncNodeWhoseLogLostItsTailRecoversByItself(t *testing.T) {
	ports := freePorts(t, 3)
	var peers []string
	for i, p := range ports {
		peers = append(peers, fmt.Sprintf("{id: n%d, address: \"127.0.0.1:%d\"}", i, p))
	}
	dirs := make([]string, 3)
	configs := make([]string, 3)
	for i := range dirs {
		dirs[i] = filepath.Join(t.TempDir(), "data")
		configs[i] = writeConfig(t, fmt.Sprintf(`
version: "3"
rpc: {listen: "tcp://127.0.0.1:0"}
kv:
  sessions: {driver: boltdb, config: {file: sessions.db}}
cluster:
  node_id: n%d
  data_dir: %q
  raft: {bind: "127.0.0.1:%d", no_sync: true, heartbeat_timeout: 300ms, election_timeout: 300ms, leader_lease_timeout: 150ms}
  peers: [%s]
`, i, dirs[i], ports[i], strings.Join(peers, ", ")))
	}
	nodes := make([]*running, 3)
	for i := range nodes {
		nodes[i] = startServe(t, config.Options{File: configs[i]})
	}
	set := func(r *running, key string) error {
		c := dialKV(t, r.addr)
		return c.Call("kv.Set", &kvv1.Request{Storage: "sessions", Items: []*kvv1.Item{{Key: key, Value: []byte("v")}}}, &kvv1.Response{})
	}
	has := func(r *running, key string) bool {
		c := dialKV(t, r.addr)
		var out kvv1.Response
		err := c.Call("kv.MGet", &kvv1.Request{Storage: "sessions", Items: []*kvv1.Item{{Key: key}}}, &out)
		return err == nil && len(out.Items) == 1
	}
	for k := range 20 {
		key := fmt.Sprintf("k%d", k)
		if !poll(20*time.Second, func() bool { return set(nodes[0], key) == nil }) {
			t.Fatalf("write %s failed; log:\n%s", key, nodes[0].stderr)
		}
	}
	if !poll(10*time.Second, func() bool { return has(nodes[2], "k19") }) {
		t.Fatalf("n2 never applied the writes; log:\n%s", nodes[2].stderr)
	}
	if err := nodes[2].stop(t); err != nil {
		t.Fatal(err)
	}

	// The power loss: the raft log loses its last entries, the storage
	// (fsynced by boltdb) keeps them.
	store, err := raftboltdb.NewBoltStore(filepath.Join(dirs[2], "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	last, _ := store.LastIndex()
	if err := store.DeleteRange(last-10, last); err != nil {
		t.Fatal(err)
	}
	_ = store.Close()

	nodes[2] = startServe(t, config.Options{File: configs[2]})
	log := nodes[2].stderr.String()
	if !strings.Contains(log, "recovering from an OS crash or power loss") || !strings.Contains(log, "rejoins as a new member") {
		t.Fatalf("no recovery logged:\n%s", log)
	}
	for k := range 20 {
		key := fmt.Sprintf("k%d", k)
		if !poll(20*time.Second, func() bool { return has(nodes[2], key) }) {
			t.Fatalf("after recovering, n2 lacks %s; log:\n%s", key, nodes[2].stderr)
		}
	}
	if !poll(20*time.Second, func() bool { return set(nodes[2], "after") == nil && has(nodes[0], "after") }) {
		t.Fatalf("the recovered node cannot write; log:\n%s", nodes[2].stderr)
	}
}
