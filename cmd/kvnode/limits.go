package main

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/internal/sysmem"
)

// boundKeys are the settings that bound a storage; only the memory driver
// takes them.
var boundKeys = []string{"max_memory", "max_keys", "eviction", "eviction_samples"}

// unboundedReason says why a driver takes no bound settings.
func unboundedReason(driver string) string {
	switch driver {
	case "redis":
		return "redis bounds itself: set maxmemory and maxmemory-policy on the redis server"
	case "memcached":
		return "memcached bounds itself: start it with -m (megabytes) and it evicts by lru"
	case "boltdb":
		return "a boltdb storage lives on disk; bound a memory storage instead"
	default:
		return "only the memory driver takes it"
	}
}

// refuseBoundKeys records a problem for each bound setting given to a
// driver other than memory: ignoring it would leave the operator believing
// the storage is bounded.
func refuseBoundKeys(sc *StorageConfig, p *problems) {
	n := resolve(sc.Node)
	if sc.Driver == "memory" || sc.Driver == "" || n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for _, k := range boundKeys {
		if !isNull(lookupKey(n, k)) {
			p.addf(joinPath(sc.ConfigPath, k), "not supported by the %s driver: %s", sc.Driver, unboundedReason(sc.Driver))
		}
	}
}

// memoryLimit is what a percentage in max_memory is taken of; a variable
// so tests can pretend to be a smaller machine.
var memoryLimit = func() (int64, sysmem.Source, error) { return sysmem.Limit("/") }

// resolveLimits turns a memory storage's bound settings into the limits it
// is served with, recording a problem under the storage's path.
func resolveLimits(sc *StorageConfig, p *problems) {
	cfg, ok := sc.Settings.(*memory.Config)
	if !ok || cfg.MaxMemory == "" && cfg.MaxKeys == 0 {
		return
	}
	var total int64
	if strings.HasSuffix(strings.TrimSpace(cfg.MaxMemory), "%") {
		n, src, err := memoryLimit()
		if err != nil {
			p.addf(joinPath(sc.ConfigPath, "max_memory"), "%q: %v; give a size in bytes instead", cfg.MaxMemory, err)
			return
		}
		total = n
		sc.LimitSource = fmt.Sprintf("%s of %s (%s)", cfg.MaxMemory, drivers.FormatBytes(n), src)
	}
	l, err := cfg.Limits(total)
	if err != nil {
		p.add(joinPath(sc.ConfigPath, "max_memory"), err)
		return
	}
	sc.Limits, sc.EvictionSamples = l, cfg.EvictionSamples
}

// gcFixedRoom is the soft memory limit's allowance for what a node holds
// besides its storages: the runtime, buffers, the raft log cache, a
// snapshot being written, requests in flight.
const gcFixedRoom = 128 << 20

// softMemoryLimit is the Go runtime's soft memory limit for a node whose
// memory storages are all bounded by max_memory: their limits, a quarter
// more for garbage, and gcFixedRoom. Under it the collector runs before
// the heap doubles (GOGC's default), so the process's RSS follows
// max_memory instead of twice the live heap. 0 (no limit) when a memory
// storage is unbounded, when there is none, or when the operator set
// GOMEMLIMIT.
func softMemoryLimit(storages []StorageConfig, lookupEnv func(string) (string, bool)) int64 {
	if _, set := lookupEnv("GOMEMLIMIT"); set {
		return 0
	}
	var total int64
	for _, sc := range storages {
		if sc.Driver != "memory" {
			continue
		}
		if sc.Limits.MaxBytes <= 0 {
			return 0
		}
		total += sc.Limits.MaxBytes
	}
	if total == 0 {
		return 0
	}
	return total + total/4 + gcFixedRoom
}
