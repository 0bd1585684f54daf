package cluster_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
)

// With raft.no_sync an OS crash may drop the raft log's tail, and with it
// entries the node acknowledged: a node that did not stop cleanly before
// the machine restarted must not come back as the voter it was. Open
// refuses with ErrRaftStateLost, Quarantine moves its state aside, and it
// rejoins as a new member that catches up from the others.
func TestRecovery_NoSyncNodeRebootedUncleanlyRejoinsAsANewMember(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Tune: func(cfg *cluster.Config) { cfg.Raft.NoSync = true }})
	leader := c.WaitLeader()
	victim := c.Followers(leader)[0]
	c.Retry("write", func(ctx context.Context) error {
		return c.Store(leader, "bolt", cluster.ReadLocal).Set(ctx, []drivers.Item{item("k", "v")})
	})
	c.EnsureSame()
	before := c.Nodes[victim].Node.Incarnation()

	c.Kill(victim)
	// As the node would find its data dir after a power loss: marked
	// running (it never stopped cleanly), by an earlier boot, with no_sync.
	marker := filepath.Join(c.DataDir(victim), "running.json")
	if err := os.WriteFile(marker, []byte(`{"boot_id":"an-earlier-boot","no_sync":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	err := c.TryRestart(victim)
	if !errors.Is(err, cluster.ErrRaftStateLost) {
		t.Fatalf("restart after an unclean stop across a reboot: %v, want ErrRaftStateLost", err)
	}
	dir, err := cluster.Quarantine(c.DataDir(victim), c.EngineFiles(victim), err)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir)); err != nil {
		t.Fatalf("quarantine dir: %v", err)
	}
	c.Restart(victim)
	if c.Nodes[victim].Node.Incarnation() == before {
		t.Fatal("the node came back as the same incarnation")
	}
	c.EnsureSame()
	if got := readLocal(c, victim, "bolt", "k"); got != "v" {
		t.Fatalf("after rejoining the node reads %q", got)
	}
	// A clean stop is not a crash: no recovery after it.
	c.Kill(victim)
	c.Restart(victim)
	c.EnsureSame()
}

// Storage files written without fsync are distrusted only after an OS
// crash: the node did not stop cleanly and the machine booted since. A
// process crash (same boot) leaves the page cache, and with it whole
// files; a marker from a version that synced them says nothing of them.
func TestCheckEngineFiles_OnlyAnUncleanStopAcrossABootTearsUnsyncedFiles(t *testing.T) {
	boot := func() string { return "boot-2" }
	for _, c := range []struct {
		name, marker string
		torn         bool
	}{
		{"clean stop", "", false},
		{"process crash", `{"boot_id":"boot-2","engines_unsynced":true}`, false},
		{"OS crash", `{"boot_id":"boot-1","engines_unsynced":true}`, true},
		{"OS crash, engines synced", `{"boot_id":"boot-1","no_sync":true}`, false},
		{"boot unknown", `{"boot_id":"","engines_unsynced":true}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.marker != "" {
				if err := os.WriteFile(filepath.Join(dir, "running.json"), []byte(c.marker), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := cluster.CheckEngineFiles(dir, boot)
			if got := errors.Is(err, cluster.ErrEnginesTorn); got != c.torn {
				t.Fatalf("CheckEngineFiles = %v, torn %t, want %t", err, got, c.torn)
			}
		})
	}
}
