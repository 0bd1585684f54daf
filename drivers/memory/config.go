package memory

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kvnode/kvnode/drivers"
)

// Config is the memory driver's configuration section. RoadRunner's memory
// driver takes no meaningful options; Interval is accepted so that existing
// .rr.yaml files decode unchanged, and is ignored because expired keys are
// hidden at once and swept by the caller (drivers.Standalone or the cluster).
//
// MaxMemory and MaxKeys bound the storage (kvnode's own keys; RoadRunner's
// memory driver has no bound): a write that would pass them fails with
// drivers.ErrFull under Eviction "reject" (the default), or makes room by
// evicting keys under "lru", "ttl" or "random".
type Config struct {
	// Interval is RoadRunner's GC interval in seconds. Ignored.
	Interval int `mapstructure:"interval" yaml:"interval"`
	// MaxMemory is bytes with a unit ("512MiB", "1GB") or a percentage of
	// the memory the process may use ("25%": of the cgroup's limit when
	// there is one, else of physical memory). Empty: unbounded.
	MaxMemory string `mapstructure:"max_memory" yaml:"max_memory"`
	// MaxKeys bounds the number of keys; 0: unbounded.
	MaxKeys int64 `mapstructure:"max_keys" yaml:"max_keys"`
	// Eviction is reject, lru, ttl or random.
	Eviction string `mapstructure:"eviction" yaml:"eviction"`
	// EvictionSamples is lru's keys sampled per victim (5, as Redis's
	// maxmemory-samples, when 0).
	EvictionSamples int `mapstructure:"eviction_samples" yaml:"eviction_samples"`
}

// ErrConfig wraps problems with a memory storage's settings.
var ErrConfig = errors.New("invalid memory config")

// Validate checks the bound settings' syntax.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxMemory != "" {
		if _, err := drivers.ParseMemorySize(c.MaxMemory); err != nil {
			errs = append(errs, fmt.Errorf("%w: max_memory: %w", ErrConfig, err))
		}
	}
	if c.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("%w: max_keys: %d: must not be negative", ErrConfig, c.MaxKeys))
	}
	if _, err := drivers.ParsePolicy(c.Eviction); err != nil {
		errs = append(errs, fmt.Errorf("%w: eviction: %w", ErrConfig, err))
	}
	if c.Eviction != "" && c.MaxMemory == "" && c.MaxKeys == 0 {
		errs = append(errs, fmt.Errorf("%w: eviction: %q without max_memory or max_keys has nothing to enforce", ErrConfig, c.Eviction))
	}
	if c.EvictionSamples < 0 || c.EvictionSamples > 64 {
		errs = append(errs, fmt.Errorf("%w: eviction_samples: %d: want 1 to 64 (0: 5)", ErrConfig, c.EvictionSamples))
	}
	return errors.Join(errs...)
}

// Limits resolves the settings into drivers.Limits, a percentage taken of
// total (the memory the process may use). Call Validate first.
func (c *Config) Limits(total int64) (drivers.Limits, error) {
	var l drivers.Limits
	var err error
	if l.Policy, err = drivers.ParsePolicy(c.Eviction); err != nil {
		return l, err
	}
	l.MaxKeys = c.MaxKeys
	if c.MaxMemory != "" {
		size, err := drivers.ParseMemorySize(c.MaxMemory)
		if err != nil {
			return l, err
		}
		if l.MaxBytes = size.Resolve(total); l.MaxBytes <= 0 {
			return l, fmt.Errorf("%w: max_memory %s of %d bytes is nothing", drivers.ErrBadLimit, size, total)
		}
	}
	return l, nil
}

var _ drivers.BoundSettings = (*Config)(nil)

// MemoryShare is MaxMemory when it is a percentage, else "".
func (c *Config) MemoryShare() string {
	if strings.HasSuffix(strings.TrimSpace(c.MaxMemory), "%") {
		return c.MaxMemory
	}
	return ""
}

// Samples is EvictionSamples.
func (c *Config) Samples() int { return c.EvictionSamples }
