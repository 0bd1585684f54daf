package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig_RPCLimitsAndAdminToken(t *testing.T) {
	t.Parallel()
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokenFile, []byte("  0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := load(Options{File: writeConfig(t, `
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
	cfg, err = load(Options{File: writeConfig(t, `
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
		_, err := load(Options{File: writeConfig(t, "version: \"3\"\nrpc: "+tt.rpc+"\nkv: {default: {driver: memory}}\n"),
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
