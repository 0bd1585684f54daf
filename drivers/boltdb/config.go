package boltdb

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults, chosen to match RoadRunner's boltdb kv driver where it has one,
// except DefaultPermissions: RoadRunner creates the file 0755, readable by
// every local user although it holds every value in the clear.
const (
	DefaultFile        = "rr.db"
	DefaultPermissions = FileMode(0o600)
	DefaultInterval    = 60 // seconds
	DefaultBucket      = "default"
	DefaultLockTimeout = 5 * time.Second
)

// Buckets that hold kvnode's own data. RoadRunner never reads them.
const (
	ttlBucket    = "kvnode_ttl"
	expiryBucket = "kvnode_expiry"
	metaBucket   = "kvnode_meta"
)

// Config is the boltdb storage configuration, with RoadRunner's keys.
type Config struct {
	// File is the database path; it is created when missing.
	File string `yaml:"file"`
	// Permissions is the mode a new file, and a file put in place by
	// Restore, is created with (default 0600, owner only).
	Permissions FileMode `yaml:"permissions"`
	// Interval is RoadRunner's GC period in seconds. kvnode hides expired keys
	// on read regardless, so this only sets how often expired keys are removed
	// from the file: pass SweepInterval() to the sweeper.
	Interval int `yaml:"interval"`
	// Bucket holds the values. RoadRunner always uses "default" (it has no
	// such key); change it only for a file RoadRunner will never read.
	Bucket string `yaml:"bucket"`
	// LockTimeout bounds how long Open waits for a file locked by another
	// process before failing (kvnode only; RoadRunner waits 20s).
	LockTimeout time.Duration `yaml:"lock_timeout"`
}

// InitDefaults fills every unset field with its default.
func (c *Config) InitDefaults() {
	if c.File == "" {
		c.File = DefaultFile
	}
	if c.Permissions == 0 {
		c.Permissions = DefaultPermissions
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = DefaultLockTimeout
	}
}

// Validate reports every problem of c at once, each naming its field. It
// expects InitDefaults to have run.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...)))
	}
	if strings.TrimSpace(c.File) == "" {
		bad("file", "must not be empty")
	}
	if c.Permissions > 0o777 {
		bad("permissions", "%d (octal %#o) is not a file mode: write it in octal, e.g. 0644", uint32(c.Permissions), uint32(c.Permissions))
	}
	if c.Interval < 0 {
		bad("interval", "must be a positive number of seconds, got %d", c.Interval)
	}
	switch c.Bucket {
	case "":
		bad("bucket", "must not be empty")
	case ttlBucket, expiryBucket, metaBucket:
		bad("bucket", "%q is reserved for kvnode's own data", c.Bucket)
	}
	if c.LockTimeout < 0 {
		bad("lock_timeout", "must not be negative, got %s", c.LockTimeout)
	}
	return errors.Join(errs...)
}

// SweepInterval is Interval as a duration, for the sweeper of expired keys.
func (c *Config) SweepInterval() time.Duration {
	if c.Interval <= 0 {
		return DefaultInterval * time.Second
	}
	return time.Duration(c.Interval) * time.Second
}

// FileMode is a file permission that YAML may give as an integer (0644 is
// read as octal, 420 as decimal) or as an octal string ("0644", "0o644").
type FileMode uint32

// UnmarshalYAML accepts an integer or an octal string.
func (m *FileMode) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return fmt.Errorf("%w: permissions: want a number like 0644, got a YAML %s", ErrConfig, kindName(node.Kind))
	}
	if node.Tag == "!!int" {
		var n int64
		if err := node.Decode(&n); err != nil {
			return fmt.Errorf("%w: permissions: %w", ErrConfig, err)
		}
		if n < 0 || n > 0o7777 {
			return fmt.Errorf("%w: permissions: %d is not a file mode", ErrConfig, n)
		}
		*m = FileMode(n)
		return nil
	}
	s := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(node.Value), "0o"), "0O")
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return fmt.Errorf("%w: permissions: %q is not an octal file mode like 0644", ErrConfig, node.Value)
	}
	*m = FileMode(n)
	return nil
}

// Perm is the mode as an os.FileMode.
func (m FileMode) Perm() os.FileMode { return os.FileMode(m) & os.ModePerm }

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "sequence"
	case yaml.AliasNode:
		return "alias"
	default:
		return "node"
	}
}
