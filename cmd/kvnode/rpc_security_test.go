package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/cluster/clustertest"
)

func TestLoadConfig_RPCLimitsAndAdminToken(t *testing.T) {
	t.Parallel()
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokenFile, []byte("  0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(LoadOptions{File: writeConfig(t, `
version: "3"
rpc:
  listen: tcp://127.0.0.1:6001
  max_items: 5000
  max_connections: 64
  max_reply_backlog: 1048576
  write_timeout: 5s
  admin_token_file: `+tokenFile+`
kv: {default: {driver: memory}}
`), LookupEnv: envMap(nil)})
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.RPC
	if r.MaxItems != 5000 || r.MaxConnections != 64 || r.MaxReplyBacklog != 1<<20 || r.WriteTimeout != 5*time.Second ||
		r.AdminToken != "0123456789abcdef0123" {
		t.Fatalf("rpc section %+v", r)
	}
	// ${VAR} works for the token as for any value.
	cfg, err = LoadConfig(LoadOptions{File: writeConfig(t, `
version: "3"
rpc: {listen: "tcp://127.0.0.1:6001", admin_token: "${KVNODE_ADMIN_TOKEN}"}
kv: {default: {driver: memory}}
`), LookupEnv: envMap(map[string]string{"KVNODE_ADMIN_TOKEN": "from-the-environment-1234"})})
	if err != nil || cfg.RPC.AdminToken != "from-the-environment-1234" {
		t.Fatalf("token from the environment: %q, %v", cfg.RPC.AdminToken, err)
	}
}

func TestLoadConfig_AdminTokenProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.token")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.token")
	for _, tt := range []struct {
		rpc  string
		want string
	}{
		{`{admin_token: short}`, "rpc.admin_token: the token is 5 characters long, want at least 16 (e.g. openssl rand -hex 32)"},
		{`{admin_token: 0123456789abcdef, admin_token_file: ` + empty + `}`, "rpc.admin_token_file: set rpc.admin_token or rpc.admin_token_file, not both"},
		{`{admin_token_file: ` + empty + `}`, "rpc.admin_token_file: " + empty + " is empty"},
		{`{admin_token_file: ` + missing + `}`, "rpc.admin_token_file: open " + missing + ": no such file or directory"},
		{`{max_items: -1}`, "rpc.max_items: must not be negative, got -1"},
		{`{max_connections: -2}`, "rpc.max_connections: must not be negative, got -2"},
	} {
		_, err := LoadConfig(LoadOptions{File: writeConfig(t, "version: \"3\"\nrpc: "+tt.rpc+"\nkv: {default: {driver: memory}}\n"),
			LookupEnv: envMap(nil)})
		assertProblems(t, err, []string{tt.want})
		if strings.Contains(errString(err), "0123456789abcdef") {
			t.Errorf("the error repeats the token: %v", err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

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
	err := serve(t.Context(), serveOptions{load: LoadOptions{File: path, LookupEnv: envMap(nil)}, stdout: &stdout, stderr: &stderr})
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "\n  rpc.admin_token: rpc: admin service without a token") ||
		!strings.Contains(err.Error(), "set rpc.admin_token (or rpc.admin_token_file), or listen on a loopback address") {
		t.Fatalf("serve = %v", err)
	}
}

// snapshot save and restore take the token from --token, --token-file or
// $KVNODE_ADMIN_TOKEN; without it a node with rpc.admin_token refuses.
func TestSnapshot_AdminToken(t *testing.T) {
	const token = "test-admin-token-0123456789"
	c := clustertest.New(t, clustertest.Options{})
	addrs := clusterRPCWith(t, c, RPCConfig{AdminToken: token})
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
	t.Setenv(adminTokenEnv, token)
	c.Poll("restore with the token from the environment", func() string {
		l = c.WaitLeader()
		code, _, errs = runVerb(t, "snapshot", "restore", file, "--rpc", addrs[l])
		if code != 0 {
			return errs
		}
		return ""
	})
	// status and health need no token.
	t.Setenv(adminTokenEnv, "")
	mustVerb(t, "status", "--rpc", addrs[l])
	mustVerb(t, "health", "--rpc", addrs[l])
}
