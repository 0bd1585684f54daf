package rrplugin

import (
	"fmt"
	"strings"
	"time"

	"github.com/kvnode/kvnode/client"
)

// Defaults of the top-level kvnode section.
const (
	// DefaultTimeout bounds one storage call, failovers included. It is
	// below kvnode's default apply_timeout (10s) on purpose: a PHP request
	// should not wait that long for a cache; a write cut off by it reaches
	// PHP as "outcome unknown".
	DefaultTimeout = 5 * time.Second
	// DefaultDialTimeout bounds one connection attempt, so that a node that
	// does not answer at all (a host gone, not a process) leaves time in
	// the call to try the next one.
	DefaultDialTimeout = time.Second
	// DefaultPoolSize is the connections kept to each node.
	DefaultPoolSize = client.DefaultPoolSize
)

// Config is the top-level `kvnode:` section of .rr.yaml, shared by every
// storage with `driver: kvnode`.
type Config struct {
	// Addrs are the RPC addresses of the cluster's nodes, tried in order:
	// calls go to the first that works and stay there until it fails.
	Addrs []string `mapstructure:"addrs"`
	// Timeout bounds one call, including moves to other nodes.
	Timeout time.Duration `mapstructure:"timeout"`
	// DialTimeout bounds one connection attempt.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// PoolSize is the connections per node; calls share them concurrently.
	PoolSize int `mapstructure:"pool_size"`
}

// StorageConfig is a storage's own `config:` (kv.<name>.config).
type StorageConfig struct {
	// Storage is the storage's name on the cluster; empty means the same
	// name as in RoadRunner's kv section.
	Storage string `mapstructure:"storage"`
}

// defaults fills what the section left out.
func (c *Config) defaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
}

// validate reports every problem of the section at once, each naming its
// key, so a broken .rr.yaml is fixed in one go.
func (c *Config) validate() error {
	var problems []string
	if len(c.Addrs) == 0 {
		problems = append(problems, "kvnode.addrs: at least one node address is required")
	}
	seen := make(map[string]bool, len(c.Addrs))
	for i, a := range c.Addrs {
		if _, _, err := client.ParseAddr(a); err != nil {
			problems = append(problems, fmt.Sprintf("kvnode.addrs[%d]: %v", i, err))
		}
		if seen[a] {
			problems = append(problems, fmt.Sprintf("kvnode.addrs[%d]: %q is listed twice", i, a))
		}
		seen[a] = true
	}
	if c.Timeout < 0 {
		problems = append(problems, "kvnode.timeout: must not be negative")
	}
	if c.DialTimeout < 0 {
		problems = append(problems, "kvnode.dial_timeout: must not be negative")
	}
	if c.PoolSize < 0 {
		problems = append(problems, "kvnode.pool_size: must not be negative")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrConfig, strings.Join(problems, "; "))
	}
	return nil
}
