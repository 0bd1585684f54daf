package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	cc := mustLoad(t, Options{LookupEnv: envMap(env)}).ClusterConfig
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
	_, err := load(Options{LookupEnv: envMap(nil), File: writeConfig(t, `
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
