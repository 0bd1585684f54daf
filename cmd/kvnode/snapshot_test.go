package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/fsm/backupfile"
)

// A snapshot saved from one cluster restores into a fresh one: every node
// of the new cluster then holds the source's state hash.
func TestSnapshot_SaveRestoreIntoFreshCluster(t *testing.T) {
	src := clustertest.New(t, clustertest.Options{})
	srcAddrs := clusterRPC(t, src)
	sl := src.WaitLeader()
	want := src.Fill(sl, 200, "k")
	ttl := strings.TrimSpace(mustVerb(t, "ttl", "--rpc", srcAddrs[sl], "--storage", "bolt", "k3"))

	file := filepath.Join(t.TempDir(), "cluster.kvn")
	follower := src.Followers(sl)[0]
	waitReady(t, src, srcAddrs[follower])
	out := mustVerb(t, "snapshot", "save", file, "--rpc", srcAddrs[follower])
	if !strings.Contains(out, "saved "+file) || !strings.Contains(out, "storages bolt, mem") {
		t.Fatalf("save: %q", out)
	}
	if tmp, _ := filepath.Glob(filepath.Join(filepath.Dir(file), "*.tmp")); len(tmp) > 0 {
		t.Fatalf("temporary file left behind: %v", tmp)
	}
	info := mustVerb(t, "snapshot", "inspect", file)
	if !strings.Contains(info, "storages    bolt, mem") || !strings.Contains(info, "intact") {
		t.Fatalf("inspect: %s", info)
	}

	dst := clustertest.New(t, clustertest.Options{})
	dstAddrs := clusterRPC(t, dst)
	dl := dst.WaitLeader()
	dst.Fill(dl, 10, "old")

	df := dst.Followers(dl)[0]
	code, _, errs := runVerb(t, "snapshot", "restore", file, "--rpc", dstAddrs[df])
	if code != 1 || !strings.Contains(errs, "not the leader") {
		t.Fatalf("restore on a follower: exit %d, %q", code, errs)
	}
	dst.Poll("restore through the leader", func() string {
		dl = dst.WaitLeader()
		code, out, errs = runVerb(t, "snapshot", "restore", file, "--rpc", dstAddrs[dl])
		if code != 0 {
			if strings.Contains(errs, "not the leader") {
				return errs
			}
			t.Fatalf("restore: exit %d, %q", code, errs)
		}
		return ""
	})
	if !strings.Contains(out, "restored "+file) || !strings.Contains(out, "storages bolt, mem") {
		t.Fatalf("restore: %q", out)
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
	if got := strings.TrimSpace(mustVerb(t, "ttl", "--rpc", dstAddrs[df], "--storage", "bolt", "k3")); got != ttl {
		t.Fatalf("restored TTL %q, source %q", got, ttl)
	}
	if code, _, _ := runVerb(t, "get", "--rpc", dstAddrs[df], "--storage", "mem", "old1"); code != 1 {
		t.Fatal("a key of the overwritten state survived the restore")
	}
}

func TestSnapshot_RestoreRefusesDamagedFiles(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{})
	addrs := clusterRPC(t, c)
	l := c.WaitLeader()
	before := c.Fill(l, 20, "k")
	file := filepath.Join(t.TempDir(), "b.kvn")
	mustVerb(t, "snapshot", "save", file, "--rpc", addrs[l])
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	damaged := map[string][]byte{
		"flipped byte": append([]byte(nil), good...),
		"truncated":    good[:len(good)-1],
		"not a backup": []byte("hello"),
	}
	damaged["flipped byte"][len(good)/2] ^= 1
	for name, b := range damaged {
		path := filepath.Join(t.TempDir(), "bad.kvn")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errs := runVerb(t, "snapshot", "restore", path, "--rpc", addrs[l])
		if code != 1 || !strings.Contains(errs, backupfile.ErrNotIntact.Error()) {
			t.Fatalf("%s: exit %d, %q", name, code, errs)
		}
		if code, _, _ := runVerb(t, "snapshot", "inspect", path); code != 1 {
			t.Fatalf("%s: inspect accepted it", name)
		}
	}
	h, _ := c.Nodes[l].Node.FSM().StateHash()
	if !bytes.Equal(h, before) {
		t.Fatal("a refused restore changed the state")
	}
	if code, _, errs := runVerb(t, "snapshot", "save"); code != 2 || !strings.Contains(errs, "exactly one FILE") {
		t.Fatalf("save without FILE: exit %d, %q", code, errs)
	}
	if code, _, _ := runVerb(t, "snapshot", "frobnicate"); code != 2 {
		t.Fatalf("unknown subcommand: exit %d", code)
	}
}

// With gossip, a follower's refusal names the leader's RPC address and the
// CLI sends the restore there by itself.
func TestSnapshot_RestoreFindsTheLeaderThroughGossip(t *testing.T) {
	src := clustertest.New(t, clustertest.Options{})
	srcAddrs := clusterRPC(t, src)
	sl := src.WaitLeader()
	want := src.Fill(sl, 30, "k")
	file := filepath.Join(t.TempDir(), "b.kvn")
	mustVerb(t, "snapshot", "save", file, "--rpc", srcAddrs[sl])

	dst := clustertest.New(t, clustertest.Options{Gossip: true})
	dl := dst.WaitLeader()
	// Advertise the RPC addresses once bootstrap is over: memberlist's
	// UpdateNode is not safe for concurrent calls, and bootstrap updates
	// the metadata too.
	dst.EnsureSame()
	addrs := clusterRPC(t, dst)
	df := dst.Followers(dl)[0]
	dst.Poll("gossip knows the leader's RPC address", func() string {
		if leaderRPCAddr(dst.Nodes[df].Node) != addrs[dl] {
			return "not yet: " + leaderRPCAddr(dst.Nodes[df].Node)
		}
		return ""
	})
	if got := gossipCounts(dst.Nodes[df].Node); got["alive"] != 3 {
		t.Fatalf("gossip counts %v", got)
	}
	code, out, errs := runVerb(t, "snapshot", "restore", file, "--rpc", addrs[df])
	if code != 0 || !strings.Contains(errs, "sending the restore to the leader at "+addrs[dl]) {
		t.Fatalf("restore through a follower: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	dst.EnsureSame()
	h, err := dst.Nodes[df].Node.FSM().StateHash()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h, want) {
		t.Fatal("restored state differs from the source")
	}
}
