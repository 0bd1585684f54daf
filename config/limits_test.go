package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/internal/sysmem"
)

func TestLoadConfig_BoundSettings(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
version: "3"
rpc: {listen: "tcp://127.0.0.1:0"}
kv:
  cache:
    driver: memory
    config: {max_memory: 512MiB, eviction: lru, eviction_samples: 10}
  share:
    driver: memory
    config: {max_memory: "25%", max_keys: 1000, eviction: ttl}
  plain:
    driver: memory
`)
	cfg, err := load(Options{File: path, LookupEnv: envMap(nil), MemoryLimit: eightGiB})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]StorageConfig{}
	for _, sc := range cfg.Storages {
		got[sc.Name] = sc
	}
	if l := got["cache"].Limits; l != (drivers.Limits{MaxBytes: 512 << 20, Policy: drivers.PolicyLRU}) || got["cache"].EvictionSamples != 10 {
		t.Errorf("cache: %+v, samples %d", l, got["cache"].EvictionSamples)
	}
	if l := got["share"].Limits; l != (drivers.Limits{MaxBytes: 2 << 30, MaxKeys: 1000, Policy: drivers.PolicyTTL}) {
		t.Errorf("share: %+v", l)
	}
	if src := got["share"].LimitSource; !strings.Contains(src, "25% of 8GiB") || !strings.Contains(src, "cgroup v2") {
		t.Errorf("share's limit source %q", src)
	}
	if got["plain"].Limits.Bounded() {
		t.Errorf("plain: %+v", got["plain"].Limits)
	}
}

// eightGiB pretends the process may use 8 GiB, as a cgroup says.
func eightGiB() (int64, sysmem.Source, error) { return 8 << 30, sysmem.CgroupV2, nil }

// TestLoadConfig_BoundSettingsRefused checks that bound settings the
// storage cannot honour stop start-up with the field's path: redis and
// memcached bound themselves, boltdb lives on disk, and a malformed
// setting would otherwise leave the storage unbounded.
func TestLoadConfig_BoundSettingsRefused(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, `
version: "3"
rpc: {listen: "tcp://127.0.0.1:0"}
kv:
  r:
    driver: redis
    config: {addrs: ["127.0.0.1:6379"], max_memory: 1GiB, eviction: lru}
  m:
    driver: memcached
    config: {addr: "127.0.0.1:11211", max_keys: 5}
  b:
    driver: boltdb
    config: {file: `+filepath.Join(dir, "b.db")+`, max_memory: 10MiB}
  bad:
    driver: memory
    config: {max_memory: 12 parsecs, eviction: allkeys-lru, max_keys: -1}
  lonely:
    driver: memory
    config: {eviction: lru}
`)
	_, err := load(Options{File: path, LookupEnv: envMap(nil)})
	assertProblems(t, err, []string{
		`kv.r.config.max_memory: not supported by the redis driver: redis bounds itself: set maxmemory and maxmemory-policy on the redis server`,
		`kv.r.config.eviction: not supported by the redis driver: redis bounds itself: set maxmemory and maxmemory-policy on the redis server`,
		`kv.m.config.max_keys: not supported by the memcached driver: memcached bounds itself: start it with -m (megabytes) and it evicts by lru`,
		`kv.b.config.max_memory: not supported by the boltdb driver: a boltdb storage lives on disk; bound a memory storage instead`,
		`kv.bad.config.max_memory: bad storage limit: "12 parsecs": want bytes with an optional unit (512MiB, 1GB) or a percentage (25%)`,
		`kv.bad.config.max_keys: -1: must not be negative`,
		`kv.bad.config.eviction: bad storage limit: eviction "allkeys-lru" (want reject, lru, ttl or random)`,
		`kv.lonely.config.eviction: "lru" without max_memory or max_keys has nothing to enforce`,
	})
	if !errors.Is(err, memory.ErrConfig) || !errors.Is(err, drivers.ErrBadLimit) {
		t.Errorf("err does not wrap memory.ErrConfig and drivers.ErrBadLimit: %v", err)
	}
}
