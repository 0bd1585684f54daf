package config

import (
	_ "embed"
	"fmt"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/internal/sysmem"
)

// defaultConfigYAML is what a bare "kvnode" serves: one memory storage
// named "default" on tcp://127.0.0.1:6001, RoadRunner's RPC address.
//
//go:embed default.yaml
var defaultConfigYAML []byte

const (
	// DefaultListen is RoadRunner's rpc.listen default.
	DefaultListen = "tcp://127.0.0.1:6001"
	// defaultGracePeriod bounds how long shutdown waits for in-flight
	// requests (endure.grace_period; RoadRunner's default is 30s, which is
	// long for a store whose calls take microseconds).
	defaultGracePeriod = 10 * time.Second
	// configVersion is the only .rr.yaml format version kvnode reads.
	configVersion = "3"
)

// Config is what kvnode reads from a .rr.yaml file.
type Config struct {
	// Source names where the configuration came from (a path or "embedded default").
	Source string
	// Version is the file's version ("3").
	Version string
	RPC     RPCConfig
	Logs    LogsConfig
	OTel    OTelConfig
	// GracePeriod bounds graceful shutdown (endure.grace_period).
	GracePeriod time.Duration
	// Storages are the kv storages in file order.
	Storages []StorageConfig
	// ClusterConfig is the decoded cluster section; nil runs a single node.
	ClusterConfig *cluster.Config
	// Ops is the HTTP ops endpoint (metrics.address, status.address).
	Ops OpsConfig
	// Warnings are non-fatal findings (unknown fields) to log at start-up.
	Warnings []string
}

// RPCConfig is RoadRunner's rpc section. Only listen is RoadRunner's; the
// other keys are kvnode's and default to the rpc package's defaults.
type RPCConfig struct {
	// Listen is tcp://host:port or unix:///path.
	Listen string `yaml:"listen"`
	// MaxFrameSize is the largest request payload in bytes.
	MaxFrameSize int `yaml:"max_frame_size"`
	// RequestTimeout bounds every storage call.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// IdleTimeout closes connections idle this long (0: never).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// FrameTimeout bounds the arrival of a whole frame once it has begun.
	FrameTimeout time.Duration `yaml:"frame_timeout"`
	// WriteTimeout closes a connection that does not take a reply in time.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MaxInFlight bounds the concurrent requests of one connection.
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxItems bounds the items of one request.
	MaxItems int `yaml:"max_items"`
	// MaxConnections bounds the open connections.
	MaxConnections int `yaml:"max_connections"`
	// MaxReplyBacklog bounds, in bytes, the replies of one connection
	// waiting to be written.
	MaxReplyBacklog int `yaml:"max_reply_backlog"`
	// AdminToken is required by snapshot save and restore; AdminTokenFile
	// names a file holding it instead (read at start, surrounding white
	// space trimmed). After loading, AdminToken holds the token either way.
	AdminToken     string `yaml:"admin_token"`
	AdminTokenFile string `yaml:"admin_token_file"`
}

// minTokenLen is the shortest admin token accepted: the token is all that
// stands between the network and every stored value, and guessing must not
// be an option.
const minTokenLen = 16

// LogsConfig is the part of RoadRunner's logs section kvnode honours.
type LogsConfig struct {
	// Level is debug, info, warn or error (panic and fatal mean error).
	Level string `yaml:"level"`
	// Mode is development, production, raw, or off/none to discard logs.
	Mode string `yaml:"mode"`
	// Encoding is console or json; empty means json in production mode.
	Encoding string `yaml:"encoding"`
	// Output is stderr, stdout or file paths (one or a list); default stderr.
	Output []string `yaml:"output"`
}

// StorageConfig is one kv.<name> entry.
type StorageConfig struct {
	Name string
	// Driver is kv.<name>.driver's; the zero Driver when it is missing or
	// unknown.
	Driver drivers.Driver
	// ConfigPath is where the driver settings were found: "kv.<name>.config",
	// or "<name>" when they came from the top-level section of that name.
	ConfigPath string
	// Node holds the raw driver settings; nil when there are none.
	Node *yaml.Node
	// Settings is the driver's decoded, defaulted and validated settings
	// (a pointer from its NewConfig); nil when the driver is unknown or the
	// settings have problems, so the storage is not opened.
	Settings any
	// Consistency is kv.<name>.consistency: the read level of a
	// replicated storage in a cluster (local unless set).
	Consistency cluster.Consistency
	// Limits are a boundable storage's max_memory, max_keys and eviction,
	// resolved (limits.go); LimitSource says what a percentage was taken
	// of. EvictionSamples is lru's samples per victim (0: the default).
	Limits          drivers.Limits
	LimitSource     string
	EvictionSamples int
}

// Options says where a configuration comes from and what it may name.
type Options struct {
	// File is the .rr.yaml path; empty means the embedded default.
	File string
	// Overrides are "key.path=value" strings applied in order after the file.
	Overrides []string
	// LookupEnv resolves ${VAR}; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Drivers are the drivers kv.<name>.driver may name (required).
	Drivers *drivers.Registry
	// MemoryLimit is what a percentage in max_memory is taken of: the
	// memory the process may use and where that figure comes from; nil
	// means sysmem.Limit("/"). Tests pretend to be a smaller machine.
	MemoryLimit func() (int64, sysmem.Source, error)
}

// Load reads, expands, overrides, decodes and validates a configuration.
// Any number of problems come back as one *Error; a file that cannot be
// read or parsed as YAML is reported alone.
//
// Precedence, lowest first: defaults, the file (with ${VAR} expanded),
// KVNODE_CLUSTER_* environment variables, -o overrides.
func Load(opts Options) (*Config, error) {
	cfg, p, err := Read(opts)
	if err != nil {
		return nil, err
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Read is Load that also returns the configuration when it has problems,
// and the problems, so that a program can add those found while opening
// the storages that are valid and report everything at once.
func Read(opts Options) (*Config, *Problems, error) {
	data, source := defaultConfigYAML, "embedded default"
	if opts.File != "" {
		b, err := os.ReadFile(opts.File)
		if err != nil {
			return nil, nil, fmt.Errorf("read config: %w", err)
		}
		data, source = b, opts.File
	}
	root, err := parseYAML(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", source, err)
	}
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	expandEnv(root, lookup)

	p := &Problems{}
	// Environment overrides sit between the file and the command line.
	overrides := append(clusterEnvOverrides(lookup), opts.Overrides...)
	for _, o := range overrides {
		if err := applyOverride(root, o); err != nil {
			p.Add("", err)
		}
	}
	memory := opts.MemoryLimit
	if memory == nil {
		memory = func() (int64, sysmem.Source, error) { return sysmem.Limit("/") }
	}
	cfg := decodeConfig(root, opts.Drivers, memory, p)
	cfg.Source = source
	cfg.Warnings = p.warnings
	return cfg, p, nil
}

// decodeConfig walks the top-level sections. Sections kvnode does not know
// (http, server, jobs, ...) belong to other RoadRunner plugins and are
// skipped silently; unknown keys inside rpc, logs and endure are skipped too
// because RoadRunner defines more of them than kvnode uses.
func decodeConfig(root *yaml.Node, reg *drivers.Registry, memory memoryLimit, p *Problems) *Config {
	cfg := &Config{
		RPC:         RPCConfig{Listen: DefaultListen},
		GracePeriod: defaultGracePeriod,
	}
	var kv *yaml.Node
	for _, s := range mappingPairs(root, "", p) {
		switch s.key {
		case "version":
			cfg.Version = decodeVersion(s.value, p)
		case "rpc":
			decodeLenient(s.value, "rpc", &cfg.RPC, p)
		case "logs":
			decodeLenient(s.value, "logs", &cfg.Logs, p)
		case "endure":
			var e struct {
				GracePeriod time.Duration `yaml:"grace_period"`
			}
			decodeLenient(s.value, "endure", &e, p)
			if e.GracePeriod != 0 {
				cfg.GracePeriod = e.GracePeriod
			}
		case "otel":
			decodeValue(s.value, "otel", reflect.ValueOf(&cfg.OTel).Elem(), p)
		case "kv":
			kv = s.value
		case "cluster":
			cfg.ClusterConfig = decodeCluster(s.value, p)
		case "metrics", "status":
			decodeOps(s.value, s.key, &cfg.Ops, p)
		}
	}
	if cfg.Version == "" {
		p.Addf("version", "missing (want %q)", configVersion)
	}
	validateRPC(&cfg.RPC, p)
	validateLogs(&cfg.Logs, p)
	cfg.OTel.validate(p)
	if cfg.GracePeriod < 0 {
		p.Addf("endure.grace_period", "must not be negative, got %s", cfg.GracePeriod)
	}
	cfg.Storages = decodeStorages(root, kv, reg, memory, p)
	for _, sc := range cfg.Storages {
		if sc.Consistency == cluster.ReadLinearizable && (cfg.ClusterConfig == nil || !sc.Driver.Replicable()) {
			p.warnf("kv."+sc.Name+".consistency", "linearizable applies to %s storages of a cluster; %s here is already as consistent as it gets",
				replicableNames(reg), sc.Driver.Name)
		}
	}
	return cfg
}

// replicableNames lists the drivers a cluster replicates: "memory and
// boltdb".
func replicableNames(reg *drivers.Registry) string {
	var names []string
	for _, n := range reg.Names() {
		if d, _ := reg.Lookup(n); d.Replicable() {
			names = append(names, n)
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// decodeLenient decodes a section without warning about unknown keys.
func decodeLenient(n *yaml.Node, path string, out any, p *Problems) {
	before := len(p.warnings)
	decodeValue(n, path, reflect.ValueOf(out).Elem(), p)
	p.warnings = p.warnings[:before]
}

// decodeVersion accepts version: "3" or version: 3.
func decodeVersion(n *yaml.Node, p *Problems) string {
	n = resolve(n)
	if isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		p.Addf("version", "want %q, got %s", configVersion, kindName(n))
		return "?"
	}
	if n.Value != configVersion {
		p.Addf("version", "unsupported version %q (want %q)", n.Value, configVersion)
	}
	return n.Value
}

// ParseListen splits an rpc.listen DSN into a network and an address, as
// RoadRunner's rpc plugin accepts it: tcp://host:port or unix:///path.
func ParseListen(dsn string) (network, address string, err error) {
	scheme, addr, ok := strings.Cut(dsn, "://")
	if !ok {
		return "", "", fmt.Errorf("invalid DSN %q: want tcp://host:port or unix:///path", dsn)
	}
	switch scheme {
	case "tcp":
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", "", fmt.Errorf("invalid DSN %q: %w", dsn, err)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || (port != "0" && n == 0) {
			return "", "", fmt.Errorf("invalid DSN %q: port %q is not a number from 0 to 65535", dsn, port)
		}
		if strings.ContainsAny(host, " /") {
			return "", "", fmt.Errorf("invalid DSN %q: bad host %q", dsn, host)
		}
		return "tcp", addr, nil
	case "unix":
		if addr == "" {
			return "", "", fmt.Errorf("invalid DSN %q: the socket path is empty", dsn)
		}
		return "unix", addr, nil
	default:
		return "", "", fmt.Errorf("invalid DSN %q: unsupported scheme %q (want tcp or unix)", dsn, scheme)
	}
}

func validateRPC(c *RPCConfig, p *Problems) {
	if strings.TrimSpace(c.Listen) == "" {
		p.Addf("rpc.listen", "missing (want e.g. %s)", DefaultListen)
	} else if _, _, err := ParseListen(c.Listen); err != nil {
		p.Add("rpc.listen", err)
	}
	for _, f := range []struct {
		name string
		bad  bool
		v    any
	}{
		{"max_frame_size", c.MaxFrameSize < 0, c.MaxFrameSize},
		{"request_timeout", c.RequestTimeout < 0, c.RequestTimeout},
		{"idle_timeout", c.IdleTimeout < 0, c.IdleTimeout},
		{"frame_timeout", c.FrameTimeout < 0, c.FrameTimeout},
		{"write_timeout", c.WriteTimeout < 0, c.WriteTimeout},
		{"max_in_flight", c.MaxInFlight < 0, c.MaxInFlight},
		{"max_items", c.MaxItems < 0, c.MaxItems},
		{"max_connections", c.MaxConnections < 0, c.MaxConnections},
		{"max_reply_backlog", c.MaxReplyBacklog < 0, c.MaxReplyBacklog},
	} {
		if f.bad {
			p.Addf("rpc."+f.name, "must not be negative, got %v", f.v)
		}
	}
	loadAdminToken(c, p)
}

// loadAdminToken reads rpc.admin_token_file into AdminToken and checks the
// token. Messages never repeat the token.
func loadAdminToken(c *RPCConfig, p *Problems) {
	key := "rpc.admin_token"
	if c.AdminTokenFile != "" {
		key = "rpc.admin_token_file"
		if c.AdminToken != "" {
			p.Addf(key, "set rpc.admin_token or rpc.admin_token_file, not both")
			return
		}
		b, err := os.ReadFile(c.AdminTokenFile)
		if err != nil {
			p.Add(key, err)
			return
		}
		if c.AdminToken = strings.TrimSpace(string(b)); c.AdminToken == "" {
			p.Addf(key, "%s is empty", c.AdminTokenFile)
			return
		}
	}
	if n := len(c.AdminToken); n > 0 && n < minTokenLen {
		p.Addf(key, "the token is %d characters long, want at least %d (e.g. openssl rand -hex 32)", n, minTokenLen)
	}
}

func validateLogs(l *LogsConfig, p *Problems) {
	l.Level = strings.ToLower(strings.TrimSpace(l.Level))
	l.Mode = strings.ToLower(strings.TrimSpace(l.Mode))
	l.Encoding = strings.ToLower(strings.TrimSpace(l.Encoding))
	switch l.Level {
	case "", "debug", "info", "warn", "warning", "error", "panic", "fatal":
	default:
		p.Addf("logs.level", "unknown level %q (want debug, info, warn, error)", l.Level)
	}
	switch l.Mode {
	case "", "development", "production", "raw", "off", "none":
	default:
		p.Addf("logs.mode", "unknown mode %q (want development, production, raw, off)", l.Mode)
	}
	switch l.Encoding {
	case "", "console", "json":
	default:
		p.Addf("logs.encoding", "unknown encoding %q (want console, json)", l.Encoding)
	}
	for i, o := range l.Output {
		if strings.TrimSpace(o) == "" {
			p.Addf(fmt.Sprintf("logs.output[%d]", i), "empty path (want stderr, stdout or a file)")
		}
	}
}
