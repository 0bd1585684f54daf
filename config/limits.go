package config

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
func refuseBoundKeys(sc *StorageConfig, p *Problems) {
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
			p.Addf(joinPath(sc.ConfigPath, k), "not supported by the %s driver: %s", sc.Driver.Name, why)
		}
	}
}

// memoryLimit is what a percentage in max_memory is taken of
// (Options.MemoryLimit).
type memoryLimit func() (int64, sysmem.Source, error)

// resolveLimits turns a boundable storage's bound settings into the limits
// it is served with, recording a problem under the storage's path.
func resolveLimits(sc *StorageConfig, memory memoryLimit, p *Problems) {
	bs, ok := sc.Settings.(drivers.BoundSettings)
	if !ok {
		return
	}
	var total int64
	var source string
	if share := bs.MemoryShare(); share != "" {
		n, src, err := memory()
		if err != nil {
			p.Addf(joinPath(sc.ConfigPath, "max_memory"), "%q: %v; give a size in bytes instead", share, err)
			return
		}
		total = n
		source = fmt.Sprintf("%s of %s (%s)", share, drivers.FormatBytes(n), src)
	}
	l, err := bs.Limits(total)
	if err != nil {
		p.Add(joinPath(sc.ConfigPath, "max_memory"), err)
		return
	}
	if l.Bounded() {
		sc.Limits, sc.LimitSource, sc.EvictionSamples = l, source, bs.Samples()
	}
}
