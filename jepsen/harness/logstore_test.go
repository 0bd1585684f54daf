package harness

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// -log-store reaches every node: a cluster of local processes started with
// LogStore "wal" keeps each node's raft log in raft-wal's directory and has
// no raft-boltdb file, so a run with the flag tests the store it names.
func TestProcesses_LogStoreReachesEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	dir := t.TempDir()
	l := startLocalCluster(t, "KVNODE_BIN", ProcessesOptions{Dir: dir, LogStore: "wal"})
	if err := WaitWritable(t.Context(), l, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, node := range l.Nodes() {
		data := filepath.Join(dir, node, "data")
		if fi, err := os.Stat(filepath.Join(data, "wal")); err != nil || !fi.IsDir() {
			t.Errorf("%s: no raft-wal directory in %s: %v", node, data, err)
		}
		if _, err := os.Stat(filepath.Join(data, "raft.db")); !os.IsNotExist(err) {
			t.Errorf("%s: raft.db present with log_store wal (stat: %v)", node, err)
		}
	}
}
