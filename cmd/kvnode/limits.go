package main

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/internal/sysmem"
)

// boundKeys are the settings that bound a storage; only drivers whose
// settings implement drivers.BoundSettings take them.
var boundKeys = []string{"max_memory", "max_keys", "eviction", "eviction_samples"}

// refuseBoundKeys records a problem for each bound setting given to a
// driver that takes none: ignoring it would leave the operator believing
// the storage is bounded.
func refuseBoundKeys(sc *StorageConfig, p *problems) {
	n := resolve(sc.Node)
	if sc.Driver.Name == "" || sc.Driver.Boundable() || n == nil || n.Kind != yaml.MappingNode {
		return
	}
	why := sc.Driver.Unbounded
	if why == "" {
		why = "only drivers that keep values in kvnode's memory take it"
	}
	for _, k := range boundKeys {
		if !isNull(lookupKey(n, k)) {
			p.addf(joinPath(sc.ConfigPath, k), "not supported by the %s driver: %s", sc.Driver.Name, why)
		}
	}
}

// memoryLimit is what a percentage in max_memory is taken of; a variable
// so tests can pretend to be a smaller machine.
var memoryLimit = func() (int64, sysmem.Source, error) { return sysmem.Limit("/") }

// resolveLimits turns a boundable storage's bound settings into the limits
// it is served with, recording a problem under the storage's path.
func resolveLimits(sc *StorageConfig, p *problems) {
	bs, ok := sc.Settings.(drivers.BoundSettings)
	if !ok {
		return
	}
	var total int64
	var source string
	if share := bs.MemoryShare(); share != "" {
		n, src, err := memoryLimit()
		if err != nil {
			p.addf(joinPath(sc.ConfigPath, "max_memory"), "%q: %v; give a size in bytes instead", share, err)
			return
		}
		total = n
		source = fmt.Sprintf("%s of %s (%s)", share, drivers.FormatBytes(n), src)
	}
	l, err := bs.Limits(total)
	if err != nil {
		p.add(joinPath(sc.ConfigPath, "max_memory"), err)
		return
	}
	if l.Bounded() {
		sc.Limits, sc.LimitSource, sc.EvictionSamples = l, source, bs.Samples()
	}
}

// gcFixedRoom is the soft memory limit's allowance for what a node holds
// besides its storages: the runtime, buffers, the raft log cache, a
// snapshot being written, requests in flight.
const gcFixedRoom = 128 << 20

// softMemoryLimit is the Go runtime's soft memory limit for a node whose
// memory storages (those of boundable drivers, which hold their values in
// the heap) are all bounded by max_memory: their limits, a quarter more
// for garbage, and gcFixedRoom. Under it the collector runs before the
// heap doubles (GOGC's default), so the process's RSS follows max_memory
// instead of twice the live heap. 0 (no limit) when a memory storage is
// unbounded, when there is none, or when the operator set GOMEMLIMIT.
func softMemoryLimit(storages []StorageConfig, lookupEnv func(string) (string, bool)) int64 {
	if _, set := lookupEnv("GOMEMLIMIT"); set {
		return 0
	}
	var total int64
	for _, sc := range storages {
		if !sc.Driver.Boundable() {
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
