package cluster_test

import (
	"errors"
	"os"
	"path/filepath"
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
	c.Gossip.EncryptKey = "AAECAwQFBgcICQoLDA0ODw=="
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
		"cluster.tls.cert: stat a.pem: no such file or directory (create the cluster CA and node certificates with kvnode tls ca",
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

// A node refuses to listen for raft or gossip where other hosts can reach
// it without TLS or a gossip key, naming the field, the tool that fixes it
// and the opt-out; loopback-only nodes need neither.
func TestConfig_UnguardedListenersBeyondLoopbackAreRefused(t *testing.T) {
	dir := t.TempDir()
	tlsOn := cluster.TLSConfig{Cert: filepath.Join(dir, "n.pem"), Key: filepath.Join(dir, "n-key.pem"), CA: filepath.Join(dir, "ca.pem")}
	for _, f := range []string{tlsOn.Cert, tlsOn.Key, tlsOn.CA} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		tune   func(*cluster.Config)
		refuse string // the field named, "" when valid
	}{
		{"loopback", func(*cluster.Config) {}, ""},
		{"loopback IPv6", func(c *cluster.Config) { c.Raft.Bind = "[::1]:7000" }, ""},
		{"other loopback address", func(c *cluster.Config) { c.Raft.Bind = "127.0.0.2:7000" }, ""},
		{"localhost", func(c *cluster.Config) { c.Raft.Bind = "localhost:7000" }, ""},
		{"all interfaces", func(c *cluster.Config) { c.Raft.Bind, c.Raft.Advertise = "0.0.0.0:7000", "10.0.0.1:7000" }, "cluster.raft.bind"},
		{"all interfaces IPv6", func(c *cluster.Config) { c.Raft.Bind, c.Raft.Advertise = "[::]:7000", "10.0.0.1:7000" }, "cluster.raft.bind"},
		{"empty host", func(c *cluster.Config) { c.Raft.Bind, c.Raft.Advertise = ":7000", "10.0.0.1:7000" }, "cluster.raft.bind"},
		{"a LAN address", func(c *cluster.Config) { c.Raft.Bind = "10.0.0.1:7000" }, "cluster.raft.bind"},
		{"advertised beyond loopback", func(c *cluster.Config) { c.Raft.Advertise = "10.0.0.1:7000" }, "cluster.raft.advertise"},
		{"a name that does not resolve", func(c *cluster.Config) { c.Raft.Advertise = "kvnode-test.invalid:7000" }, "cluster.raft.advertise"},
		{"with TLS", func(c *cluster.Config) { c.Raft.Bind, c.Raft.Advertise, c.TLS = "0.0.0.0:7000", "10.0.0.1:7000", tlsOn }, ""},
		{"insecure", func(c *cluster.Config) {
			c.Raft.Bind, c.Raft.Advertise, c.Insecure = "0.0.0.0:7000", "10.0.0.1:7000", true
		}, ""},
		{"gossip loopback", func(c *cluster.Config) { c.Gossip.Bind = "127.0.0.1:7946" }, ""},
		{"gossip all interfaces", func(c *cluster.Config) { c.Gossip.Bind = "0.0.0.0:7946" }, "cluster.gossip.bind"},
		{"gossip advertised beyond loopback", func(c *cluster.Config) { c.Gossip.Bind, c.Gossip.Advertise = "127.0.0.1:7946", "10.0.0.1:7946" }, "cluster.gossip.advertise"},
		{"gossip with a key", func(c *cluster.Config) {
			c.Gossip.Bind, c.Gossip.EncryptKey = "0.0.0.0:7946", "AAECAwQFBgcICQoLDA0ODw=="
		}, ""},
		{"gossip insecure", func(c *cluster.Config) { c.Gossip.Bind, c.Insecure = "0.0.0.0:7946", true }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := baseConfig()
			tc.tune(&c)
			c.InitDefaults()
			err := c.Validate()
			if tc.refuse == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, cluster.ErrConfig) {
				t.Fatalf("accepted (err %v)", err)
			}
			fix := "kvnode tls ca"
			if strings.HasPrefix(tc.refuse, "cluster.gossip") {
				fix = "kvnode keygen"
			}
			for _, want := range []string{tc.refuse + ": ", "reachable from other hosts", fix, "cluster.insecure: true", "KVNODE_CLUSTER_INSECURE"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the refusal does not say %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestConfig_GossipKeyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(good, []byte("AAECAwQFBgcICQoLDA0ODw==\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("c2hvcnQ="), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, key, problem string
	}{
		{"a key file", good, "", ""},
		{"missing", filepath.Join(dir, "nope.key"), "", "cluster.gossip.encrypt_key_file: open"},
		{"too short", short, "", "cluster.gossip.encrypt_key_file: 5 bytes"},
		{"both", good, "AAECAwQFBgcICQoLDA0ODw==", "cluster.gossip.encrypt_key_file: set together with encrypt_key"},
	} {
		c := baseConfig()
		c.Gossip = cluster.GossipConfig{Bind: "0.0.0.0:7946", EncryptKeyFile: tc.file, EncryptKey: tc.key}
		c.InitDefaults()
		err := c.Validate()
		if tc.problem == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.problem) {
			t.Errorf("%s: %v (want %q)", tc.name, err, tc.problem)
		}
		if strings.Contains(err.Error(), "reachable from other hosts") {
			t.Errorf("%s: a configured but broken key file is reported as no key: %v", tc.name, err)
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
