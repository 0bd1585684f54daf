package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"

	"github.com/kvnode/kvnode/config"
)

// holdGossipPort reserves a loopback port for TCP and UDP until release is
// called, just before the node binds it: a port merely found free could be
// taken meanwhile by another node's outgoing connection.
func holdGossipPort(t *testing.T) (int, func()) {
	t.Helper()
	for range 50 {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := tl.Addr().(*net.TCPAddr).Port
		ul, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			return port, func() { _ = tl.Close(); _ = ul.Close() }
		}
		_ = tl.Close()
	}
	t.Fatal("no free port")
	return 0, nil
}

// Three kvnode processes (in-process serve) that know only the gossip
// seeds form a cluster; SIGTERM on one makes it leave: it hands over
// leadership if it leads and is removed from raft (leave_on_terminate),
// and the other two keep serving writes.
func TestServe_GossipClusterNodeLeavesOnTerminate(t *testing.T) {
	ports := make([]int, 3)
	release := make([]func(), 3)
	var seeds []string
	for i := range ports {
		ports[i], release[i] = holdGossipPort(t)
		t.Cleanup(release[i])
		seeds = append(seeds, fmt.Sprintf(`"127.0.0.1:%d"`, ports[i]))
	}
	nodes := make([]*running, 3)
	for i := range nodes {
		release[i]()
		nodes[i] = startServe(t, config.Options{File: writeConfig(t, fmt.Sprintf(`
version: "3"
rpc: {listen: "tcp://127.0.0.1:0"}
kv:
  default: {driver: memory}
cluster:
  node_id: n%d
  data_dir: %q
  bootstrap_expect: 3
  leave_on_terminate: true
  raft: {bind: "127.0.0.1:0", heartbeat_timeout: 300ms, election_timeout: 300ms, leader_lease_timeout: 150ms}
  gossip: {bind: "127.0.0.1:%d", join: [%s], profile: local, encrypt_key: "AAECAwQFBgcICQoLDA0ODw=="}
`, i, filepath.Join(t.TempDir(), "data"), ports[i], strings.Join(seeds, ", ")))})
	}
	set := func(r *running, key string) error {
		c := dialKV(t, r.addr)
		return c.Call("kv.Set", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{{Key: key, Value: []byte("v")}}}, &kvv1.Response{})
	}
	if !poll(20*time.Second, func() bool { return set(nodes[0], "before") == nil }) {
		t.Fatalf("no write succeeded; logs:\n%s\n%s\n%s", nodes[0].stderr, nodes[1].stderr, nodes[2].stderr)
	}

	if err := nodes[2].stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !strings.Contains(nodes[2].stderr.String(), "leave: removed from the raft configuration") {
		t.Fatalf("n2 did not leave raft; log:\n%s", nodes[2].stderr)
	}
	removed := func() bool {
		for _, line := range strings.Split(nodes[0].stderr.String()+nodes[1].stderr.String(), "\n") {
			if strings.Contains(line, "removed member on its request") && strings.Contains(line, "member=n2") {
				return true
			}
		}
		return false
	}
	if !poll(5*time.Second, removed) {
		t.Fatalf("no leader logged n2's removal; logs:\n%s\n%s", nodes[0].stderr, nodes[1].stderr)
	}
	if !poll(10*time.Second, func() bool { return set(nodes[1], "after") == nil }) {
		t.Fatalf("the remaining two do not accept writes; logs:\n%s\n%s", nodes[0].stderr, nodes[1].stderr)
	}
}
