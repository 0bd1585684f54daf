package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/fsm"
)

func backup(t *testing.T, n *cluster.Node, stale bool) []byte {
	t.Helper()
	info, rc, err := n.Backup(t.Context(), stale)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rc.Close(); err != nil {
			t.Error(err)
		}
	}()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != info.Size || info.Index == 0 || info.NodeID != n.ID() {
		t.Fatalf("backup info %+v for %d bytes", info, len(b))
	}
	return b
}

func TestBackup_RestoreIntoAnotherCluster(t *testing.T) {
	src := clustertest.New(t, clustertest.Options{})
	sl := src.WaitLeader()
	// The source runs far ahead of the destination in log indexes: the
	// restored engines must not swallow the destination's later writes.
	want := src.Fill(sl, 300, "k")
	b := backup(t, src.Nodes[src.Followers(sl)[0]].Node, false)
	info, err := fsm.VerifySnapshot(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}

	dst := clustertest.New(t, clustertest.Options{})
	dl := dst.WaitLeader()
	dst.Fill(dl, 5, "old")
	df := dst.Followers(dl)[0]
	if _, err := dst.Nodes[df].Node.RestoreBackup(t.Context(), bytes.NewReader(b)); !errors.Is(err, cluster.ErrNotLeader) {
		t.Fatalf("restore on a follower: %v", err)
	}
	var res cluster.RestoreInfo
	dst.Poll("restore on the leader", func() string {
		dl = dst.WaitLeader()
		res, err = dst.Nodes[dl].Node.RestoreBackup(t.Context(), bytes.NewReader(b))
		if errors.Is(err, cluster.ErrNotLeader) {
			return err.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
		return ""
	})
	if res.SourceIndex != info.Index || res.Index <= res.SourceIndex || len(res.Storages) != 2 || len(res.Cleared) != 0 {
		t.Fatalf("restore info %+v (backup at %d)", res, info.Index)
	}
	dst.EnsureSame()
	for _, n := range dst.Live() {
		h, err := n.Node.FSM().StateHash()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(h, want) {
			t.Fatalf("%s holds %x after the restore, the source %x", n.ID, h, want)
		}
	}
	if got := mget(t, dst.Store(df, "bolt", cluster.ReadLinearizable), "k1", "old1"); got["k1"] != string(bytes.Repeat([]byte{1}, 101)) || got["old1"] != "" {
		t.Fatalf("follower reads %v after the restore", got)
	}

	// The restored cluster goes on: new writes apply everywhere, also after
	// a node restarts from the restored snapshot.
	dst.Retry("write after restore", func(ctx context.Context) error {
		return dst.Store(df, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{item("after", "yes")})
	})
	dst.Kill(df)
	dst.Restart(df)
	dst.EnsureSame()
	if got := mget(t, dst.Store(df, "mem", cluster.ReadLinearizable), "after", "k2"); got["after"] != "yes" || got["k2"] != string(bytes.Repeat([]byte{2}, 102)) {
		t.Fatalf("after restart: %v", got)
	}
}

func TestBackup_RestoreRefusals(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{})
	l := c.WaitLeader()
	before := c.Fill(l, 20, "k")
	good := backup(t, c.Nodes[l].Node, true)

	damaged := bytes.Clone(good)
	damaged[len(damaged)/2] ^= 0xff
	other := clustertest.New(t, clustertest.Options{Storages: map[string]string{"mem": "memory", "extra": "memory"}})
	ol := other.WaitLeader()
	other.Retry("set extra", func(ctx context.Context) error {
		return other.Store(ol, "extra", cluster.ReadLocal).Set(ctx, []drivers.Item{item("x", "1")})
	})
	foreign := backup(t, other.Nodes[ol].Node, false)

	for name, b := range map[string][]byte{"damaged": damaged, "truncated": good[:len(good)-3], "foreign storage": foreign} {
		l = c.WaitLeader()
		_, err := c.Nodes[l].Node.RestoreBackup(t.Context(), bytes.NewReader(b))
		if !errors.Is(err, cluster.ErrBackup) {
			t.Fatalf("%s: %v", name, err)
		}
		h, _ := c.Nodes[l].Node.FSM().StateHash()
		if !bytes.Equal(h, before) {
			t.Fatalf("%s: a refused restore changed the state", name)
		}
	}
}
