package memcached

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultAddr is where a storage without addr connects, as in RoadRunner.
const DefaultAddr = "127.0.0.1:11211"

// Config is a memcached storage's configuration, with RoadRunner's keys.
type Config struct {
	// Addr lists the servers; a single string is accepted too. An entry
	// containing "/" is a unix socket path.
	Addr Addrs `yaml:"addr"`
	// MaxIdleConns is the number of idle connections kept per server
	// (0: gomemcache's default, 2). Set it near the peak of parallel calls.
	MaxIdleConns int `yaml:"max_idle_conns"`
	// Timeout bounds dialling and every socket read and write, as a Go
	// duration string (0: gomemcache's default, 500ms).
	Timeout time.Duration `yaml:"timeout"`
}

// Addrs is a list of server addresses that also decodes from one string,
// because RoadRunner configs use both forms.
type Addrs []string

// UnmarshalYAML accepts a sequence of strings or a single string.
func (a *Addrs) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := n.Decode(&s); err != nil {
			return fmt.Errorf("addr: %w", err)
		}
		*a = Addrs{s}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return fmt.Errorf("addr: want a string or a list of strings: %w", err)
	}
	*a = list
	return nil
}

// InitDefaults fills the values RoadRunner fills: the default address.
func (c *Config) InitDefaults() {
	if len(c.Addr) == 0 {
		c.Addr = Addrs{DefaultAddr}
	}
}

// Validate reports every problem at once, each naming its field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if len(c.Addr) == 0 {
		bad("addr: at least one address is required")
	}
	for i, a := range c.Addr {
		if err := checkAddr(a); err != nil {
			bad("addr[%d] %q: %v", i, a, err)
		}
	}
	if c.MaxIdleConns < 0 {
		bad("max_idle_conns: must not be negative, got %d", c.MaxIdleConns)
	}
	if c.Timeout < 0 {
		bad("timeout: must not be negative, got %s", c.Timeout)
	}
	return errors.Join(errs...)
}

func checkAddr(a string) error {
	if strings.Contains(a, "/") {
		return nil // a unix socket path; whether it exists is known only when dialling
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("want host:port or a socket path: %w", err)
	}
	if host == "" {
		return errors.New("want host:port, host is empty")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("want host:port, bad port %q", port)
	}
	return nil
}
