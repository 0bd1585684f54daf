package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/config"
	"github.com/kvnode/kvnode/internal/cli"
)

// RPC on an address other hosts can reach, without a token, does not start:
// snapshot save and restore would answer anyone.
func TestServe_RefusesNonLocalRPCWithoutToken(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
version: "3"
rpc: {listen: "tcp://0.0.0.0:0"}
kv: {default: {driver: memory}}
`)
	var stdout, stderr syncBuffer
	err := serve(t.Context(), serveOptions{load: config.Options{File: path, LookupEnv: envMap(nil), Drivers: storageDrivers()}, stdout: &stdout, stderr: &stderr})
	if !errors.Is(err, config.ErrInvalidConfig) || !strings.Contains(err.Error(), "\n  rpc.admin_token: rpc: admin service without a token") ||
		!strings.Contains(err.Error(), "set rpc.admin_token (or rpc.admin_token_file), or listen on a loopback address") {
		t.Fatalf("serve = %v", err)
	}
}

// snapshot save and restore take the token from --token, --token-file or
// $KVNODE_ADMIN_TOKEN; without it a node with rpc.admin_token refuses.
func TestSnapshot_AdminToken(t *testing.T) {
	const token = "test-admin-token-0123456789"
	c := clustertest.New(t, clustertest.Options{})
	addrs := clusterRPCWith(t, c, config.RPCConfig{AdminToken: token})
	l := c.WaitLeader()
	c.Fill(l, 10, "k")
	dir := t.TempDir()
	file := filepath.Join(dir, "b.kvsnap")

	code, _, errs := runVerb(t, "snapshot", "save", file, "--rpc", addrs[l])
	if code != 1 || !strings.Contains(errs, "kvnode.SnapshotOpen: admin token required") || !strings.Contains(errs, "--token or KVNODE_ADMIN_TOKEN") {
		t.Fatalf("save without a token: exit %d, %q", code, errs)
	}
	code, _, errs = runVerb(t, "snapshot", "save", file, "--rpc", addrs[l], "--token", token+"x")
	if code != 1 || !strings.Contains(errs, "does not match rpc.admin_token") {
		t.Fatalf("save with a wrong token: exit %d, %q", code, errs)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a refused save left %s: %v", file, err)
	}
	mustVerb(t, "snapshot", "save", file, "--rpc", addrs[l], "--token", token)
	tokenFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustVerb(t, "snapshot", "save", file, "--rpc", addrs[l], "--token-file", tokenFile)

	code, _, errs = runVerb(t, "snapshot", "restore", file, "--rpc", addrs[l])
	if code != 1 || !strings.Contains(errs, "kvnode.RestoreBegin: admin token required") {
		t.Fatalf("restore without a token: exit %d, %q", code, errs)
	}
	t.Setenv(cli.AdminTokenEnv, token)
	c.Poll("restore with the token from the environment", func() string {
		l = c.WaitLeader()
		code, _, errs = runVerb(t, "snapshot", "restore", file, "--rpc", addrs[l])
		if code != 0 {
			return errs
		}
		return ""
	})
	// status and health need no token.
	t.Setenv(cli.AdminTokenEnv, "")
	mustVerb(t, "status", "--rpc", addrs[l])
	mustVerb(t, "health", "--rpc", addrs[l])
}
