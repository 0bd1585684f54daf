package config

import (
	"strings"
	"testing"
)

func TestLoadConfig_OpsAddresses(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, Options{File: writeConfig(t, `
version: "3"
metrics: {address: "127.0.0.1:2112", collect: {}}
status: {address: "127.0.0.1:2114", unavailable_status_code: 503}
kv: {default: {driver: memory, config: {}}}
`)})
	if got := strings.Join(cfg.Ops.Addresses, ","); got != "127.0.0.1:2112,127.0.0.1:2114" {
		t.Fatalf("addresses %q", got)
	}
	if cfg := mustLoad(t, Options{}); len(cfg.Ops.Addresses) != 0 {
		t.Fatalf("the default config serves ops on %v", cfg.Ops.Addresses)
	}
	_, err := load(Options{LookupEnv: envMap(nil), File: writeConfig(t, `
version: "3"
metrics: {address: "2112"}
kv: {default: {driver: memory, config: {}}}
`)})
	if err == nil || !strings.Contains(err.Error(), "metrics.address") {
		t.Fatalf("bad address: %v", err)
	}
}
