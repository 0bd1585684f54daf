package harness

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kvnode/kvnode/internal/pki"
)

// writeSecrets writes what jepsen/docker/kvnode.yaml reads from
// /etc/kvnode/secrets, as `make cluster-secrets` does with kvnode tls and
// kvnode keygen: ca.pem, <node>.pem and <node>-key.pem for each node (with
// its "-peer" alias and 127.0.0.1 as names), gossip.key and admin.token.
// Every run has
// a cluster CA of its own, valid long enough that no node warns of its
// expiry.
func writeSecrets(dir string, nodes []string) (adminToken string, err error) {
	const validity = 365 * 24 * time.Hour
	now := time.Now()
	caPair, err := pki.NewCA(validity, now)
	if err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	ca, err := pki.LoadCA(caPair.Cert, caPair.Key)
	if err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	files := map[string][]byte{"ca.pem": caPair.Cert}
	for _, n := range nodes {
		p, err := ca.Issue(n, []string{n + "-peer", "127.0.0.1"}, validity, now)
		if err != nil {
			return "", fmt.Errorf("secrets: %w", err)
		}
		files[n+".pem"], files[n+"-key.pem"] = p.Cert, p.Key
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	files["gossip.key"] = []byte(base64.StdEncoding.EncodeToString(key) + "\n")
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	adminToken = hex.EncodeToString(token)
	files["admin.token"] = []byte(adminToken + "\n")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return "", fmt.Errorf("secrets: %w", err)
		}
	}
	return adminToken, nil
}
