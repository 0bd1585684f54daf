package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
)

func TestLoadConfig_GossipAndTLSFromEnvironment(t *testing.T) {
	t.Parallel()
	certs := t.TempDir()
	for _, f := range []string{"node.pem", "node-key.pem", "ca.pem"} {
		if err := os.WriteFile(filepath.Join(certs, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"KVNODE_CLUSTER_NODE_ID":            "n1",
		"KVNODE_CLUSTER_DATA_DIR":           "/data",
		"KVNODE_CLUSTER_RAFT_BIND":          "0.0.0.0:7000",
		"KVNODE_CLUSTER_RAFT_ADVERTISE":     "kv1:7000",
		"KVNODE_CLUSTER_BOOTSTRAP_EXPECT":   "3",
		"KVNODE_CLUSTER_VOTERS":             "5",
		"KVNODE_CLUSTER_REAP_AFTER":         "10m",
		"KVNODE_CLUSTER_LEAVE_ON_TERMINATE": "true",
		"KVNODE_CLUSTER_GOSSIP_BIND":        "0.0.0.0:7946",
		"KVNODE_CLUSTER_GOSSIP_JOIN":        "kv1:7946, kv2:7946,kv3:7946",
		"KVNODE_CLUSTER_GOSSIP_ENCRYPT_KEY": "AAECAwQFBgcICQoLDA0ODw==",
		"KVNODE_CLUSTER_TLS_CERT":           filepath.Join(certs, "node.pem"),
		"KVNODE_CLUSTER_TLS_KEY":            filepath.Join(certs, "node-key.pem"),
		"KVNODE_CLUSTER_TLS_CA":             filepath.Join(certs, "ca.pem"),
	}
	cc := mustLoad(t, LoadOptions{LookupEnv: envMap(env)}).ClusterConfig
	if cc == nil {
		t.Fatal("no cluster config from the environment")
	}
	if cc.BootstrapExpect != 3 || cc.Voters != 5 || cc.ReapAfter != 10*time.Minute || !cc.LeaveOnTerminate {
		t.Errorf("membership = expect %d voters %d reap %s leave %v", cc.BootstrapExpect, cc.Voters, cc.ReapAfter, cc.LeaveOnTerminate)
	}
	if g := cc.Gossip; g.Bind != "0.0.0.0:7946" || strings.Join(g.Join, " ") != "kv1:7946 kv2:7946 kv3:7946" || g.EncryptKey == "" {
		t.Errorf("gossip = %+v", g)
	}
	if cc.TLS.Cert != filepath.Join(certs, "node.pem") || cc.TLS.Key != filepath.Join(certs, "node-key.pem") || cc.TLS.CA != filepath.Join(certs, "ca.pem") {
		t.Errorf("tls = %+v", cc.TLS)
	}
}

func TestLoadConfig_GossipProblemsNameTheirFields(t *testing.T) {
	t.Parallel()
	_, err := LoadConfig(LoadOptions{LookupEnv: envMap(nil), File: writeConfig(t, `
version: "3"
kv:
  default: {driver: memory}
cluster:
  node_id: n1
  data_dir: /data
  raft: {bind: "127.0.0.1:7000"}
  bootstrap_expect: 3
  gossip: {encrypt_key: "too-short", join: ["kv1"]}
  tls: {cert: a.pem}
`)})
	for _, want := range []string{"cluster.bootstrap_expect", "cluster.gossip.join", "cluster.gossip.encrypt_key", "cluster.tls.key", "cluster.tls.ca"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no problem naming %s in: %v", want, err)
		}
	}
}

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
		nodes[i] = startServe(t, LoadOptions{File: writeConfig(t, fmt.Sprintf(`
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
