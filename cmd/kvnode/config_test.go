package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memcached"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/drivers/redis"
)

// writeConfig writes a config file into a fresh temp dir and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), ".rr.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// envMap is a LookupEnv over a fixed map, so tests need no t.Setenv and
// can run in parallel.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func mustLoad(t *testing.T, opts LoadOptions) *Config {
	t.Helper()
	if opts.LookupEnv == nil {
		opts.LookupEnv = envMap(nil)
	}
	cfg, err := LoadConfig(opts)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	return cfg
}

func storage(t *testing.T, cfg *Config, name string) StorageConfig {
	t.Helper()
	for _, s := range cfg.Storages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no storage %q in %+v", name, cfg.Storages)
	return StorageConfig{}
}

func TestLoadConfig_EmbeddedDefault(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, LoadOptions{})
	if cfg.RPC.Listen != "tcp://127.0.0.1:6001" {
		t.Errorf("rpc.listen = %q, want tcp://127.0.0.1:6001", cfg.RPC.Listen)
	}
	if cfg.Version != "3" || cfg.GracePeriod != defaultGracePeriod || cfg.Source != "embedded default" {
		t.Errorf("version %q grace %s source %q", cfg.Version, cfg.GracePeriod, cfg.Source)
	}
	if len(cfg.Storages) != 1 {
		t.Fatalf("storages = %+v, want one", cfg.Storages)
	}
	s := cfg.Storages[0]
	if s.Name != "default" || s.Driver != "memory" {
		t.Errorf("storage = %s(%s), want default(memory)", s.Name, s.Driver)
	}
	if _, ok := s.Settings.(*memory.Config); !ok {
		t.Errorf("settings = %T, want *memory.Config", s.Settings)
	}
	if cfg.OTel.enabled() || len(cfg.Warnings) != 0 {
		t.Errorf("otel enabled %v, warnings %q", cfg.OTel.enabled(), cfg.Warnings)
	}
}

func TestLoadConfig_EnvExpansion(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
version: "3"
rpc:
  listen: tcp://${HOST:-127.0.0.1}:${PORT:-6001}
kv:
  files:
    driver: boltdb
    config:
      file: ${DIR}/files.db
      interval: ${INTERVAL:-30}
      permissions: ${PERM:-0640}
      bucket: "${BUCKET:-default}"
  cache:
    driver: redis
    config:
      password: pa$$word${SUFFIX}
      username: '${EMPTY:-fallback}'
      addrs: [ "${REDIS}" ]
      db: ${UNSET_NO_DEFAULT}
`)
	cfg := mustLoad(t, LoadOptions{File: path, LookupEnv: envMap(map[string]string{
		"PORT":   "7001",
		"DIR":    "/data",
		"EMPTY":  "", // set but empty: ":-" takes the default, as in the shell
		"REDIS":  "10.0.0.1:6379",
		"SUFFIX": "!",
	})})
	if cfg.RPC.Listen != "tcp://127.0.0.1:7001" {
		t.Errorf("rpc.listen = %q", cfg.RPC.Listen)
	}
	bolt := storage(t, cfg, "files").Settings.(*boltdb.Config)
	if bolt.File != "/data/files.db" || bolt.Interval != 30 || bolt.Bucket != "default" {
		t.Errorf("boltdb = %+v", bolt)
	}
	// A plain scalar is re-typed after expansion: 0640 is the octal number.
	if bolt.Permissions != 0o640 {
		t.Errorf("permissions = %#o, want 0640", bolt.Permissions)
	}
	r := storage(t, cfg, "cache").Settings.(*redis.Config)
	if r.Password != "pa$$word!" {
		t.Errorf("password = %q: a bare $ must stay literal", r.Password)
	}
	if r.Username != "fallback" || len(r.Addrs) != 1 || r.Addrs[0] != "10.0.0.1:6379" || r.DB != 0 {
		t.Errorf("redis = %+v", r)
	}
}

func TestExpandString(t *testing.T) {
	t.Parallel()
	env := envMap(map[string]string{"A": "1", "E": ""})
	for in, want := range map[string]string{
		"${A}":          "1",
		"x${A}y${A}z":   "x1y1z",
		"${B:-two}":     "two",
		"${A:-two}":     "1",
		"${E}":          "",
		"${E:-d}":       "d",
		"${B}":          "",
		"${B:-a:-b}":    "a:-b",
		"${unclosed":    "${unclosed",
		"$A and ${A}":   "$A and 1",
		"no variables":  "no variables",
		"${A}${unterm":  "1${unterm",
		"${B:-}":        "",
		"${B:-${A}}":    "${A}", // no nesting: the default is "${A" and the last } stays
		"a${A}b${B:-c}": "a1bc",
	} {
		if got, _ := expandString(in, env); got != want {
			t.Errorf("expandString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoadConfig_OverridesWinOverFileAndEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeConfig(t, `
version: "3"
rpc:
  listen: tcp://127.0.0.1:${PORT}
kv:
  default:
    driver: boltdb
    config:
      file: a.db
  shared:
    driver: redis
    config:
      addrs: [ "127.0.0.1:6379", "127.0.0.1:6380" ]
`)
	cfg := mustLoad(t, LoadOptions{
		File:      path,
		LookupEnv: envMap(map[string]string{"PORT": "6001"}),
		Overrides: []string{
			"rpc.listen=tcp://127.0.0.1:7001",
			"kv.default.driver=memory",
			"kv.shared.config.addrs.1=127.0.0.1:7000",
			"kv.extra.driver=boltdb",
			"kv.extra.config.file=" + filepath.Join(dir, "extra.db"),
			"kv.extra.config.permissions=0600",
			"endure.grace_period=3s",
			"logs.level=debug",
		},
	})
	if cfg.RPC.Listen != "tcp://127.0.0.1:7001" {
		t.Errorf("rpc.listen = %q: the override must beat file and env", cfg.RPC.Listen)
	}
	if d := storage(t, cfg, "default"); d.Driver != "memory" {
		t.Errorf("kv.default.driver = %q", d.Driver)
	}
	if r := storage(t, cfg, "shared").Settings.(*redis.Config); strings.Join(r.Addrs, ",") != "127.0.0.1:6379,127.0.0.1:7000" {
		t.Errorf("addrs = %q", r.Addrs)
	}
	extra := storage(t, cfg, "extra").Settings.(*boltdb.Config)
	if extra.File != filepath.Join(dir, "extra.db") || extra.Permissions != 0o600 {
		t.Errorf("extra = %+v", extra)
	}
	if cfg.GracePeriod != 3*time.Second || cfg.Logs.Level != "debug" {
		t.Errorf("grace %s level %q", cfg.GracePeriod, cfg.Logs.Level)
	}
	if names := []string{cfg.Storages[0].Name, cfg.Storages[1].Name, cfg.Storages[2].Name}; strings.Join(names, ",") != "default,shared,extra" {
		t.Errorf("storage order = %v, want file order then overrides", names)
	}
}

func TestLoadConfig_BadOverrides(t *testing.T) {
	t.Parallel()
	_, err := LoadConfig(LoadOptions{LookupEnv: envMap(nil), Overrides: []string{
		"novalue",
		"=x",
		"a..b=1",
		"rpc.listen.port=1",
		"kv.default.driver.x.y=1",
	}})
	want := []string{
		`-o "novalue": want key.path=value`,
		`-o "=x": want key.path=value`,
		`-o "a..b=1": empty key in path`,
		`-o rpc.listen.port: rpc.listen is a value, not a section`,
		`-o kv.default.driver.x.y: kv.default.driver is a value, not a section`,
	}
	assertProblems(t, err, want)
}

func TestLoadConfig_TopLevelSectionIsTheConfigWhenConfigIsAbsent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeConfig(t, `
version: "3"
kv:
  sessions:
    driver: boltdb
  cache:
    driver: memcached
    config:
      addr: 127.0.0.1:1
sessions:
  file: `+filepath.Join(dir, "sessions.db")+`
  permissions: 0600
cache:
  addr: 127.0.0.1:2
`)
	cfg := mustLoad(t, LoadOptions{File: path})
	s := storage(t, cfg, "sessions")
	b := s.Settings.(*boltdb.Config)
	if s.ConfigPath != "sessions" || b.File != filepath.Join(dir, "sessions.db") || b.Permissions != 0o600 {
		t.Errorf("sessions: path %q settings %+v", s.ConfigPath, b)
	}
	// kv.<name>.config, when present, wins over the top-level section.
	c := storage(t, cfg, "cache")
	if m := c.Settings.(*memcached.Config); c.ConfigPath != "kv.cache.config" || len(m.Addr) != 1 || m.Addr[0] != "127.0.0.1:1" {
		t.Errorf("cache: path %q settings %+v", c.ConfigPath, m)
	}

	// Problems in a top-level section are reported under its own path.
	path = writeConfig(t, "version: 3\nkv: {sessions: {driver: boltdb}}\nsessions: {interval: soon}\n")
	_, err := LoadConfig(LoadOptions{File: path, LookupEnv: envMap(nil)})
	assertProblems(t, err, []string{`sessions.interval: cannot decode "soon" as int`})
}

// rrYAML is a real-world .rr.yaml: other plugins' sections, RR-only keys in
// logs, and one storage per driver.
const rrYAML = `
version: "3"

server:
  command: "php worker.php"
  relay: pipes

http:
  address: 0.0.0.0:8080
  middleware: [ "gzip", "headers" ]
  pool:
    num_workers: 4
    supervisor:
      max_worker_memory: 128

jobs:
  consume: [ "local" ]
  pipelines:
    local:
      driver: memory
      config:
        priority: 10

rpc:
  listen: ${RPC_LISTEN:-tcp://127.0.0.1:6001}

logs:
  mode: development
  level: ${LOG_LEVEL:-info}
  line_ending: "\n"
  channels:
    http:
      level: info

endure:
  grace_period: 5s
  print_graph: false

kv:
  local:
    driver: memory
    config: {}
  files:
    driver: boltdb
    config:
      file: ${DATA_DIR}/files.db
      permissions: 0644
      interval: 40
  cache:
    driver: redis
    config:
      addrs:
        - ${REDIS_ADDR:-127.0.0.1:6379}
      dial_timeout: 2s
  sessions:
    driver: memcached

sessions:
  addr: [ "${MEMCACHED_ADDR:-127.0.0.1:11211}" ]
`

func TestLoadConfig_RealisticRRFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := mustLoad(t, LoadOptions{
		File:      writeConfig(t, rrYAML),
		LookupEnv: envMap(map[string]string{"DATA_DIR": dir, "REDIS_ADDR": "127.0.0.1:7379"}),
	})
	var got []string
	for _, s := range cfg.Storages {
		got = append(got, s.Name+"("+s.Driver+")")
	}
	if strings.Join(got, ",") != "local(memory),files(boltdb),cache(redis),sessions(memcached)" {
		t.Errorf("storages = %v", got)
	}
	if b := storage(t, cfg, "files").Settings.(*boltdb.Config); b.File != dir+"/files.db" || b.Permissions != 0o644 || b.Interval != 40 {
		t.Errorf("files = %+v", b)
	}
	if r := storage(t, cfg, "cache").Settings.(*redis.Config); r.Addrs[0] != "127.0.0.1:7379" || r.DialTimeout != 2*time.Second {
		t.Errorf("cache = %+v", r)
	}
	if m := storage(t, cfg, "sessions").Settings.(*memcached.Config); m.Addr[0] != "127.0.0.1:11211" {
		t.Errorf("sessions = %+v", m)
	}
	if cfg.RPC.Listen != defaultListen || cfg.GracePeriod != 5*time.Second || cfg.Logs.Mode != "development" {
		t.Errorf("rpc %q grace %s logs %+v", cfg.RPC.Listen, cfg.GracePeriod, cfg.Logs)
	}
	// Other plugins' sections and RoadRunner-only logs keys are not ours to
	// complain about.
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings = %q, want none", cfg.Warnings)
	}
}

func TestLoadConfig_ReservedSectionsAreAccepted(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, LoadOptions{File: writeConfig(t, `
version: "3"
kv: {default: {driver: memory}}
cluster:
  node_id: n1
  raft: {bind: "127.0.0.1:7000"}
metrics: {address: "127.0.0.1:2112"}
status: {address: "127.0.0.1:2114"}
`)})
	if cfg.Cluster == nil || len(cfg.Cluster.Content) != 4 {
		t.Errorf("cluster section not kept: %+v", cfg.Cluster)
	}
}

func TestLoadConfig_WarnsAboutUnknownDriverFields(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, LoadOptions{File: writeConfig(t, `
version: "3"
kv:
  files:
    driver: boltdb
    config: {file: `+filepath.Join(t.TempDir(), "f.db")+`, permisions: 0644}
    colour: blue
otel: {exporter: none, sampler: always}
`)})
	want := []string{
		"otel.sampler: unknown field, ignored",
		"kv.files.colour: unknown field, ignored (want driver, config)",
		"kv.files.config.permisions: unknown field, ignored",
	}
	if strings.Join(cfg.Warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(cfg.Warnings, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadConfig_Version(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yaml, problem string }{
		{`version: 3`, ""},
		{`version: "3"`, ""},
		{``, `version: missing (want "3")`},
		{`version: "2.7"`, `version: unsupported version "2.7" (want "3")`},
		{`version: [3]`, `version: want "3", got a list`},
	} {
		path := writeConfig(t, tc.yaml+"\nkv: {default: {driver: memory}}\n")
		_, err := LoadConfig(LoadOptions{File: path, LookupEnv: envMap(nil)})
		if tc.problem == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.yaml, err)
			}
			continue
		}
		assertProblems(t, err, []string{tc.problem})
	}
}

// assertProblems checks that err is one ConfigError listing exactly want.
func assertProblems(t *testing.T, err error, want []string) {
	t.Helper()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want a configuration error", err)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %T, want *ConfigError", err)
	}
	var got []string
	for _, p := range ce.Problems {
		got = append(got, p.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), "\n  "+w) {
			t.Errorf("error text does not list %q:\n%s", w, err)
		}
	}
}

func TestLoadConfig_ReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeConfig(t, `
version: "3"
rpc:
  listen: 127.0.0.1:6001
  request_timeout: forever
logs:
  level: loud
  mode: verbose
endure:
  grace_period: 10
otel:
  exporter: zipkin
  client: carrier-pigeon
kv:
  sessions:
    driver: bolt
  cache:
    config: {addrs: ["127.0.0.1:6379"]}
  files:
    driver: boltdb
    config:
      file: `+filepath.Join(dir, "f.db")+`
      permissions: abc
      interval: [1]
      lock_timeout: 5
  shared:
    driver: redis
    config:
      addrs: [ "no-port" ]
      db: -1
      dial_timeout: 1h
      tls: {cert: only-cert.pem}
  mc:
    driver: memcached
    config:
      addr: {host: x}
  a:
    driver: boltdb
    config: {file: `+filepath.Join(dir, "same.db")+`}
  b:
    driver: boltdb
    config: {file: `+filepath.Join(dir, ".", "same.db")+`}
  plain: yes
  "": {driver: memory}
`)
	_, err := LoadConfig(LoadOptions{File: path, LookupEnv: envMap(nil)})
	assertProblems(t, err, []string{
		`rpc.request_timeout: cannot decode "forever" as duration (want e.g. "500ms", "10s", "1m")`,
		`endure.grace_period: cannot decode "10" as duration (want e.g. "500ms", "10s", "1m")`,
		`rpc.listen: invalid DSN "127.0.0.1:6001": want tcp://host:port or unix:///path`,
		`logs.level: unknown level "loud" (want debug, info, warn, error)`,
		`logs.mode: unknown mode "verbose" (want development, production, raw, off)`,
		`otel.exporter: unsupported exporter "zipkin" (want otlp, stdout, stderr, none)`,
		`otel.client: unknown client "carrier-pigeon" (want http, grpc)`,
		`kv.sessions.driver: unknown driver "bolt" (want memory, boltdb, redis, memcached)`,
		`kv.cache.driver: missing (want memory, boltdb, redis, memcached)`,
		`kv.files.config.permissions: "abc" is not an octal file mode like 0644`,
		`kv.files.config.interval: cannot decode a list as int`,
		`kv.files.config.lock_timeout: cannot decode "5" as duration (want e.g. "500ms", "10s", "1m")`,
		`kv.shared.config.addrs[0] "no-port": want host:port: address no-port: missing port in address`,
		`kv.shared.config.db: must not be negative, got -1`,
		`kv.shared.config.tls.key: required with tls.cert`,
		`kv.mc.config.addr: want a string or a list of strings: cannot unmarshal !!map into []string`,
		`kv.plain: want a mapping with driver and config, got "yes"`,
		`kv.: storage name must not be empty`,
		`kv.b.config.file: "` + filepath.Join(dir, ".", "same.db") + `" is already the file of storage "a" (one bolt file serves one storage)`,
	})
	if !errors.Is(err, ErrUnknownDriver) || !errors.Is(err, boltdb.ErrConfig) || !errors.Is(err, redis.ErrConfig) {
		t.Errorf("err does not wrap the drivers' sentinels: %v", err)
	}
}

func TestLoadConfig_FileErrors(t *testing.T) {
	t.Parallel()
	if _, err := LoadConfig(LoadOptions{File: filepath.Join(t.TempDir(), "missing.yaml")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	for _, bad := range []string{"version: [", "- a\n- b\n", "just a string", "\t\tx: y"} {
		_, err := LoadConfig(LoadOptions{File: writeConfig(t, bad), LookupEnv: envMap(nil)})
		if err == nil || !strings.Contains(err.Error(), "yaml") {
			t.Errorf("%q: err = %v, want a yaml error", bad, err)
		}
	}
	// An empty file is a file without version and storages, not a crash.
	_, err := LoadConfig(LoadOptions{File: writeConfig(t, ""), LookupEnv: envMap(nil)})
	assertProblems(t, err, []string{`version: missing (want "3")`, `kv: no storages configured (want kv.<name>.driver)`})
}

// garbageYAML is hostile or merely odd input every loader must survive.
var garbageYAML = []string{
	"",
	"~",
	"version: 3\nkv: ~",
	"version: 3\nkv: [a, b]",
	"version: 3\nkv: {a: [1], b: {driver: [x]}, c: {driver: {x: 1}}}",
	"version: 3\nkv: {a: {driver: boltdb, config: [1, 2]}}",
	"version: 3\nkv: {a: {driver: redis, config: {addrs: {a: b}, tls: [1]}}}",
	"version: 3\nkv: {a: {driver: memcached, config: {addr: [[1]], timeout: [1]}}}",
	"version: 3\nrpc: [1]\nlogs: 7\notel: [x]\nendure: yes",
	"version: 3\nlogs: {output: {a: b}}",
	"a: &a [*a]",
	"a: &a {b: *a}\nkv: *a",
	"version: 3\nkv: {x: {driver: boltdb, config: &c {<<: *c}}}",
	"version: 3\nkv: {x: {<<: [1, 2]}}",
	"version: 3\nkv: {x: {driver: memory}, x: {driver: boltdb}}",
	"? [complex, key]\n: value",
	"kv: {? [a]: {driver: memory}}",
	"version: !!binary aGVsbG8=\nkv: !!set {a}",
	"%YAML 1.2\n---\nversion: 3\n...\n---\nsecond: doc",
	"version: 3\nkv: {a: {driver: boltdb, config: {permissions: 99999999999999999999}}}",
	"version: 3\nkv: {a: {driver: redis, config: {db: 1e400, pool_size: -9223372036854775809}}}",
	"\x00\x01\x02",
	"{{{{{{{{{{",
	"version: '3'\nkv:\n  a:\n    driver: memory\n   config: {}",
}

func TestLoadConfig_GarbageNeverPanics(t *testing.T) {
	t.Parallel()
	for _, g := range garbageYAML {
		for _, overrides := range [][]string{nil, {"kv.a.config=x", "kv.0=1", "version.x=1"}} {
			cfg, err := LoadConfig(LoadOptions{File: writeConfig(t, g), Overrides: overrides, LookupEnv: envMap(nil)})
			if cfg == nil && err == nil {
				t.Errorf("%q: neither config nor error", g)
			}
		}
	}
}

func FuzzLoadConfig(f *testing.F) {
	for _, g := range append(garbageYAML, rrYAML) {
		f.Add(g, "kv.a.driver=memory")
	}
	f.Fuzz(func(t *testing.T, yaml, override string) {
		root, err := parseYAML([]byte(yaml))
		if err != nil {
			return
		}
		expandEnv(root, envMap(map[string]string{"A": "1"}))
		p := &problems{}
		if err := applyOverride(root, override); err != nil {
			p.add("", err)
		}
		cfg := decodeConfig(root, p)
		if cfg == nil {
			t.Fatal("decodeConfig returned nil")
		}
		if err := p.err(); err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("error %v is not a configuration error", err)
		}
	})
}
