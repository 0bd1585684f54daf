package redis

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// DefaultAddr is where a storage without addrs connects, as in RoadRunner.
const DefaultAddr = "127.0.0.1:6379"

// Config is a redis storage's configuration. Keys match RoadRunner's redis
// driver, so an existing .rr.yaml section works unchanged. Durations are Go
// duration strings ("5s"); zero values leave go-redis' defaults in place.
type Config struct {
	// Addrs: one address is a single node, several are a cluster; with
	// MasterName they are the sentinels.
	Addrs    []string `yaml:"addrs"`
	DB       int      `yaml:"db"`
	Username string   `yaml:"username"`
	Password string   `yaml:"password"`
	// MasterName selects sentinel failover for the named master.
	MasterName       string `yaml:"master_name"`
	SentinelPassword string `yaml:"sentinel_password"`
	// RouteByLatency and RouteRandomly send read-only commands to replicas
	// (cluster, or sentinel with replicas).
	RouteByLatency bool          `yaml:"route_by_latency"`
	RouteRandomly  bool          `yaml:"route_randomly"`
	DialTimeout    time.Duration `yaml:"dial_timeout"`
	// MaxRetries: 0 keeps go-redis' default (3), -1 disables retries.
	MaxRetries      int           `yaml:"max_retries"`
	MinRetryBackoff time.Duration `yaml:"min_retry_backoff"`
	MaxRetryBackoff time.Duration `yaml:"max_retry_backoff"`
	PoolSize        int           `yaml:"pool_size"`
	MinIdleConns    int           `yaml:"min_idle_conns"`
	ConnMaxIdleTime time.Duration `yaml:"conn_max_idle_time"`
	ReadTimeout     time.Duration `yaml:"read_timeout"`
	WriteTimeout    time.Duration `yaml:"write_timeout"`
	PoolTimeout     time.Duration `yaml:"pool_timeout"`
	// IdleCheckFreq is accepted for compatibility with RoadRunner configs;
	// go-redis v9 checks idle connections on use and has no such setting.
	IdleCheckFreq time.Duration `yaml:"idle_check_freq"`
	// IdleTimeout and MaxConnAge are the names older RoadRunner versions
	// used for ConnMaxIdleTime and the connection lifetime.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	MaxConnAge  time.Duration `yaml:"max_conn_age"`
	// ReadOnly allows read-only commands on cluster replicas.
	ReadOnly bool `yaml:"read_only"`
	// TLS, when present, makes every connection use TLS.
	TLS *TLSConfig `yaml:"tls"`
}

// TLSConfig holds PEM file paths. Cert and Key are a client certificate for
// mutual TLS, read again on every handshake so renewed files are picked up;
// RootCA is added to the system roots to verify the server.
type TLSConfig struct {
	Cert   string `yaml:"cert"`
	Key    string `yaml:"key"`
	RootCA string `yaml:"root_ca"`
}

// InitDefaults fills the values RoadRunner fills: the default address.
func (c *Config) InitDefaults() {
	if len(c.Addrs) == 0 {
		c.Addrs = []string{DefaultAddr}
	}
}

// Validate reports every problem at once, each naming its field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if len(c.Addrs) == 0 {
		bad("addrs: at least one address is required")
	}
	for i, a := range c.Addrs {
		if err := checkAddr(a); err != nil {
			bad("addrs[%d] %q: %v", i, a, err)
		}
	}
	if c.MaxRetries < -1 {
		bad("max_retries: -1 (no retries) or more, got %d", c.MaxRetries)
	}
	if c.DB < 0 {
		bad("db: must not be negative, got %d", c.DB)
	}
	if c.DB != 0 && c.MasterName == "" && len(c.Addrs) > 1 {
		bad("db: redis cluster has only db 0, got %d", c.DB)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"pool_size", c.PoolSize}, {"min_idle_conns", c.MinIdleConns}} {
		if f.v < 0 {
			bad("%s: must not be negative, got %d", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"dial_timeout", c.DialTimeout}, {"min_retry_backoff", c.MinRetryBackoff},
		{"max_retry_backoff", c.MaxRetryBackoff}, {"conn_max_idle_time", c.ConnMaxIdleTime},
		{"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout}, {"pool_timeout", c.PoolTimeout},
		{"idle_check_freq", c.IdleCheckFreq}, {"idle_timeout", c.IdleTimeout}, {"max_conn_age", c.MaxConnAge},
	} {
		if f.v < 0 {
			bad("%s: must not be negative, got %s", f.name, f.v)
		}
	}
	if c.MinRetryBackoff > 0 && c.MaxRetryBackoff > 0 && c.MinRetryBackoff > c.MaxRetryBackoff {
		bad("min_retry_backoff %s is greater than max_retry_backoff %s", c.MinRetryBackoff, c.MaxRetryBackoff)
	}
	if c.TLS != nil {
		for _, err := range c.TLS.validate() {
			errs = append(errs, fmt.Errorf("%w: %w", ErrConfig, err))
		}
	}
	return errors.Join(errs...)
}

func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("want host:port: %w", err)
	}
	if host == "" {
		return errors.New("want host:port, host is empty")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("want host:port, bad port %q", port)
	}
	return nil
}

func (t *TLSConfig) validate() []error {
	var errs []error
	switch {
	case t.Cert != "" && t.Key == "":
		errs = append(errs, errors.New("tls.key: required with tls.cert"))
	case t.Key != "" && t.Cert == "":
		errs = append(errs, errors.New("tls.cert: required with tls.key"))
	case t.Cert != "":
		if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
			errs = append(errs, fmt.Errorf("tls.cert/tls.key: %w", err))
		}
	}
	if t.RootCA != "" {
		if _, err := rootPool(t.RootCA); err != nil {
			errs = append(errs, fmt.Errorf("tls.root_ca: %w", err))
		}
	}
	return errs
}

// rootPool returns the system roots plus the certificates in file.
func rootPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate found", file)
	}
	return pool, nil
}

// tlsConfig builds the client TLS settings; it expects a validated Config.
func (t *TLSConfig) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.RootCA != "" {
		pool, err := rootPool(t.RootCA)
		if err != nil {
			return nil, fmt.Errorf("%w: tls.root_ca: %w", ErrConfig, err)
		}
		cfg.RootCAs = pool
	}
	if t.Cert != "" {
		cert, key := t.Cert, t.Key
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("redis tls client certificate: %w", err)
			}
			return &pair, nil
		}
	}
	return cfg, nil
}

// options maps the configuration onto go-redis' universal options, whose
// client choice (sentinel, cluster, single node) matches RoadRunner's.
func (c *Config) options() (*goredis.UniversalOptions, error) {
	idle := c.ConnMaxIdleTime
	if idle == 0 {
		idle = c.IdleTimeout
	}
	o := &goredis.UniversalOptions{
		Addrs:            append([]string(nil), c.Addrs...),
		DB:               c.DB,
		Username:         c.Username,
		Password:         c.Password,
		MasterName:       c.MasterName,
		SentinelPassword: c.SentinelPassword,
		RouteByLatency:   c.RouteByLatency,
		RouteRandomly:    c.RouteRandomly,
		DialTimeout:      c.DialTimeout,
		MaxRetries:       c.MaxRetries,
		MinRetryBackoff:  c.MinRetryBackoff,
		MaxRetryBackoff:  c.MaxRetryBackoff,
		PoolSize:         c.PoolSize,
		MinIdleConns:     c.MinIdleConns,
		ConnMaxIdleTime:  idle,
		ConnMaxLifetime:  c.MaxConnAge,
		ReadTimeout:      c.ReadTimeout,
		WriteTimeout:     c.WriteTimeout,
		PoolTimeout:      c.PoolTimeout,
		ReadOnly:         c.ReadOnly,
		// The caller's deadline must bound socket I/O, not only ReadTimeout.
		ContextTimeoutEnabled: true,
	}
	if c.TLS != nil {
		t, err := c.TLS.tlsConfig()
		if err != nil {
			return nil, err
		}
		o.TLSConfig = t
	}
	return o, nil
}
