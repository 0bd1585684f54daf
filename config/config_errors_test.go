package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/redis"
)

// assertProblems checks that err is one Error listing exactly want.
func assertProblems(t *testing.T, err error, want []string) {
	t.Helper()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want a configuration error", err)
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %T, want *Error", err)
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
	_, err := load(Options{File: path, LookupEnv: envMap(nil)})
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
		`kv.b.config.file: "` + filepath.Join(dir, ".", "same.db") + `" is already the file of storage "a" (one boltdb file serves one storage)`,
	})
	if !errors.Is(err, ErrUnknownDriver) || !errors.Is(err, boltdb.ErrConfig) || !errors.Is(err, redis.ErrConfig) {
		t.Errorf("err does not wrap the drivers' sentinels: %v", err)
	}
}

func TestLoadConfig_FileErrors(t *testing.T) {
	t.Parallel()
	if _, err := load(Options{File: filepath.Join(t.TempDir(), "missing.yaml")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	for _, bad := range []string{"version: [", "- a\n- b\n", "just a string", "\t\tx: y"} {
		_, err := load(Options{File: writeConfig(t, bad), LookupEnv: envMap(nil)})
		if err == nil || !strings.Contains(err.Error(), "yaml") {
			t.Errorf("%q: err = %v, want a yaml error", bad, err)
		}
	}
	// An empty file is a file without version and storages, not a crash.
	_, err := load(Options{File: writeConfig(t, ""), LookupEnv: envMap(nil)})
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
			cfg, err := load(Options{File: writeConfig(t, g), Overrides: overrides, LookupEnv: envMap(nil)})
			if cfg == nil && err == nil {
				t.Errorf("%q: neither config nor error", g)
			}
		}
	}
}

func FuzzLoadConfig(f *testing.F) {
	rr, err := os.ReadFile(rrFile)
	if err != nil {
		f.Fatal(err)
	}
	for _, g := range append(garbageYAML, string(rr)) {
		f.Add(g, "kv.a.driver=memory")
	}
	f.Fuzz(func(t *testing.T, yaml, override string) {
		root, err := parseYAML([]byte(yaml))
		if err != nil {
			return
		}
		expandEnv(root, envMap(map[string]string{"A": "1"}))
		p := &Problems{}
		if err := applyOverride(root, override); err != nil {
			p.Add("", err)
		}
		cfg := decodeConfig(root, testDrivers(), eightGiB, p)
		if cfg == nil {
			t.Fatal("decodeConfig returned nil")
		}
		if err := p.Err(); err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("error %v is not a configuration error", err)
		}
	})
}
