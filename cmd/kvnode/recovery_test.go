package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
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

// With raft.no_sync the raft log is not fsynced: after a power loss the
// storage can be ahead of the log (its pages reached the disk, the log's
// tail did not). The node used to refuse to start ("belongs to another
// cluster") and needed hand repair; now it moves the suspect state aside,
// rejoins as a new member and catches up.
func TestServe_NoSyncNodeWhoseLogLostItsTailRecoversByItself(t *testing.T) {
	b := startBoltCluster(t, "no_sync: true, ")
	b.writeAndReplicate(t)
	if err := b.nodes[2].stop(t); err != nil {
		t.Fatal(err)
	}

	// The power loss: the raft log loses its last entries, the storage
	// keeps them.
	store, err := raftboltdb.NewBoltStore(filepath.Join(b.dirs[2], "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	last, _ := store.LastIndex()
	if err := store.DeleteRange(last-10, last); err != nil {
		t.Fatal(err)
	}
	_ = store.Close()

	b.nodes[2] = startServe(t, config.Options{File: b.configs[2]})
	log := b.nodes[2].stderr.String()
	if !strings.Contains(log, "recovering from an OS crash or power loss") || !strings.Contains(log, "rejoins as a new member") {
		t.Fatalf("no recovery logged:\n%s", log)
	}
	b.expectAllAndWritable(t)
}

// On a cluster node a boltdb storage commits without fsync (the raft log
// is its durable record), so an OS crash can tear its file in ways bbolt
// cannot detect. After an unclean stop across a reboot the node moves the
// file aside before bbolt reads it and rebuilds it from the raft snapshot
// and log: every acknowledged write is there, and the node writes again.
// Before, a torn file stopped the node at start (or was served as it was).
func TestServe_StorageFileTornByAnOSCrashIsRebuiltFromTheLog(t *testing.T) {
	b := startBoltCluster(t, "")
	b.writeAndReplicate(t)
	dir := b.dirs[2]
	// What a running node leaves for the next start to judge by.
	if m, err := os.ReadFile(filepath.Join(dir, "running.json")); err != nil || !bytes.Contains(m, []byte(`"engines_unsynced":true`)) {
		t.Fatalf("running marker %q (%v): want engines_unsynced", m, err)
	}
	if err := b.nodes[2].stop(t); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "running.json")); !os.IsNotExist(err) {
		t.Fatalf("a clean stop left the running marker (stat: %v)", err)
	}
	// As the data dir would be found after a power loss: marked running
	// by an earlier boot, the storage file's pages half written.
	marker := `{"boot_id":"an-earlier-boot","no_sync":false,"engines_unsynced":true}`
	if err := os.WriteFile(filepath.Join(dir, "running.json"), []byte(marker), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sessions.db"), bytes.Repeat([]byte{0xa5}, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}

	b.nodes[2] = startServe(t, config.Options{File: b.configs[2]})
	log := b.nodes[2].stderr.String()
	if !strings.Contains(log, "storage files moved aside, rebuilt from the raft log") {
		t.Fatalf("no recovery logged:\n%s", log)
	}
	b.expectAllAndWritable(t)
}

// boltCluster is three in-process nodes with one boltdb storage, sessions.
type boltCluster struct {
	nodes         []*running
	dirs, configs []string
}

// startBoltCluster starts it; raftExtra goes into each node's cluster.raft.
func startBoltCluster(t *testing.T, raftExtra string) *boltCluster {
	t.Helper()
	ports := freePorts(t, 3)
	var peers []string
	for i, p := range ports {
		peers = append(peers, fmt.Sprintf("{id: n%d, address: \"127.0.0.1:%d\"}", i, p))
	}
	b := &boltCluster{nodes: make([]*running, 3), dirs: make([]string, 3), configs: make([]string, 3)}
	for i := range b.dirs {
		b.dirs[i] = filepath.Join(t.TempDir(), "data")
		b.configs[i] = writeConfig(t, fmt.Sprintf(`
version: "3"
rpc: {listen: "tcp://127.0.0.1:0"}
kv:
  sessions: {driver: boltdb, config: {file: sessions.db}}
cluster:
  node_id: n%d
  data_dir: %q
  raft: {bind: "127.0.0.1:%d", %sheartbeat_timeout: 300ms, election_timeout: 300ms, leader_lease_timeout: 150ms}
  peers: [%s]
`, i, b.dirs[i], ports[i], raftExtra, strings.Join(peers, ", ")))
	}
	for i := range b.nodes {
		b.nodes[i] = startServe(t, config.Options{File: b.configs[i]})
	}
	return b
}

func (b *boltCluster) set(t *testing.T, r *running, key string) error {
	t.Helper()
	c := dialKV(t, r.addr)
	return c.Call("kv.Set", &kvv1.Request{Storage: "sessions", Items: []*kvv1.Item{{Key: key, Value: []byte("v")}}}, &kvv1.Response{})
}

func (b *boltCluster) has(t *testing.T, r *running, key string) bool {
	t.Helper()
	c := dialKV(t, r.addr)
	var out kvv1.Response
	err := c.Call("kv.MGet", &kvv1.Request{Storage: "sessions", Items: []*kvv1.Item{{Key: key}}}, &out)
	return err == nil && len(out.Items) == 1
}

// writeAndReplicate writes k0..k19 through n0 and waits for n2 to apply them.
func (b *boltCluster) writeAndReplicate(t *testing.T) {
	t.Helper()
	for k := range 20 {
		key := fmt.Sprintf("k%d", k)
		if !poll(20*time.Second, func() bool { return b.set(t, b.nodes[0], key) == nil }) {
			t.Fatalf("write %s failed; log:\n%s", key, b.nodes[0].stderr)
		}
	}
	if !poll(10*time.Second, func() bool { return b.has(t, b.nodes[2], "k19") }) {
		t.Fatalf("n2 never applied the writes; log:\n%s", b.nodes[2].stderr)
	}
}

// expectAllAndWritable checks that n2 serves k0..k19 and takes a write.
func (b *boltCluster) expectAllAndWritable(t *testing.T) {
	t.Helper()
	n2 := b.nodes[2]
	for k := range 20 {
		key := fmt.Sprintf("k%d", k)
		if !poll(20*time.Second, func() bool { return b.has(t, n2, key) }) {
			t.Fatalf("after recovering, n2 lacks %s; log:\n%s", key, n2.stderr)
		}
	}
	if !poll(20*time.Second, func() bool { return b.set(t, n2, "after") == nil && b.has(t, b.nodes[0], "after") }) {
		t.Fatalf("the recovered node cannot write; log:\n%s", n2.stderr)
	}
}
