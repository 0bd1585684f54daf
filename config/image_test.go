package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The image's built-in configuration listens on every interface: without
// its secrets mounted it does not start, and says what is missing; with
// TLS and the key taken away it refuses unless told it is insecure.
func TestImageConfig_RefusesToStartWithoutItsSecrets(t *testing.T) {
	t.Parallel()
	file := filepath.Join("..", "jepsen", "docker", "kvnode.yaml")
	env := map[string]string{"HOSTNAME": "node1"}
	_, err := load(Options{File: file, LookupEnv: envMap(env)})
	for _, want := range []string{
		"cluster.gossip.encrypt_key_file: open /etc/kvnode/secrets/gossip.key", "kvnode keygen",
		"cluster.tls.cert: stat /etc/kvnode/secrets/node1.pem", "cluster.tls.key: stat /etc/kvnode/secrets/node1-key.pem",
		"cluster.tls.ca: stat /etc/kvnode/secrets/ca.pem", "kvnode tls cert NODE",
		"rpc.admin_token_file: open /etc/kvnode/secrets/admin.token",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("without secrets: no %q in %v", want, err)
		}
	}

	for _, k := range []string{"KVNODE_CLUSTER_TLS_CA", "KVNODE_CLUSTER_TLS_CERT", "KVNODE_CLUSTER_TLS_KEY", "KVNODE_CLUSTER_GOSSIP_ENCRYPT_KEY_FILE"} {
		env[k] = ""
	}
	_, err = load(Options{File: file, LookupEnv: envMap(env)})
	for _, want := range []string{
		`cluster.raft.bind: "0.0.0.0:7000" is reachable from other hosts without TLS`,
		`cluster.gossip.bind: "0.0.0.0:7946" is reachable from other hosts without a gossip key`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("without TLS and key: no %q in %v", want, err)
		}
	}
	env["KVNODE_CLUSTER_INSECURE"] = "true"
	token := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(token, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := load(Options{File: file, LookupEnv: envMap(env), Overrides: []string{"rpc.admin_token_file=" + token}}); err != nil || !cfg.ClusterConfig.Insecure || cfg.ClusterConfig.TLS.Enabled() {
		t.Errorf("insecure, without TLS and key: %v", err)
	}
}
