package cluster_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/cluster"
)

func baseConfig() cluster.Config {
	return cluster.Config{NodeID: "n1", DataDir: "/tmp/x", Raft: cluster.RaftConfig{Bind: "127.0.0.1:7000"}}
}

func TestConfig_MembershipDefaults(t *testing.T) {
	c := baseConfig()
	c.Gossip.Bind = "0.0.0.0:7946"
	c.InitDefaults()
	if c.Voters != 3 || c.ReapAfter != 5*time.Minute || c.Gossip.Advertise != "0.0.0.0:7946" || c.Gossip.Profile != "lan" {
		t.Fatalf("defaults: voters %d reap_after %s advertise %q profile %q", c.Voters, c.ReapAfter, c.Gossip.Advertise, c.Gossip.Profile)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfig_MembershipProblemsNameTheirFields(t *testing.T) {
	c := baseConfig()
	c.BootstrapExpect = 3
	c.Peers = []cluster.Peer{{ID: "n1", Address: "127.0.0.1:7000"}}
	c.Voters = -1
	c.ReapAfter = -time.Second
	c.Gossip = cluster.GossipConfig{Bind: "nope", Join: []string{"kv1"}, EncryptKey: "c2hvcnQ=", Profile: "moon"}
	c.TLS = cluster.TLSConfig{Cert: "a.pem"}
	c.InitDefaults()
	err := c.Validate()
	if !errors.Is(err, cluster.ErrConfig) {
		t.Fatalf("not ErrConfig: %v", err)
	}
	for _, field := range []string{
		"cluster.voters", "cluster.reap_after", "cluster.bootstrap_expect: set together with peers",
		"cluster.gossip.bind", "cluster.gossip.join[0]", "cluster.gossip.encrypt_key: 5 bytes",
		"cluster.gossip.profile", "cluster.tls.key: missing", "cluster.tls.ca: missing",
	} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("no problem for %s in:\n%v", field, err)
		}
	}

	c = baseConfig()
	c.BootstrapExpect = 3
	c.Gossip.Join = []string{"kv1:7946"}
	c.InitDefaults()
	err = c.Validate()
	for _, field := range []string{"cluster.bootstrap_expect: needs gossip.bind", "cluster.gossip.join: needs gossip.bind"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("no problem for %s in: %v", field, err)
		}
	}
}

func TestConfig_LimitsAndCommitTimeout(t *testing.T) {
	c := baseConfig()
	c.InitDefaults()
	if c.MaxConnections != 1024 || c.MaxConnectionsPerHost != 128 {
		t.Fatalf("connection caps default to %d, %d", c.MaxConnections, c.MaxConnectionsPerHost)
	}
	c.MaxConnections, c.MaxConnectionsPerHost, c.Raft.CommitTimeout = -1, -1, 2*time.Second
	err := c.Validate()
	for _, want := range []string{"cluster.max_connections: -1", "cluster.max_connections_per_host: -1", "cluster.raft.commit_timeout: 2s exceeds 1s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no problem %q in: %v", want, err)
		}
	}
}
