package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/drivers"
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

func mustLoad(t *testing.T, opts Options) *Config {
	t.Helper()
	if opts.LookupEnv == nil {
		opts.LookupEnv = envMap(nil)
	}
	cfg, err := load(opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

// testDrivers are kvnode's drivers, as its command lists them.
func testDrivers() *drivers.Registry {
	return drivers.NewRegistry(memory.Driver(), boltdb.Driver(), redis.Driver(), memcached.Driver())
}

// load is Load with kvnode's drivers when opts names none.
func load(opts Options) (*Config, error) {
	if opts.Drivers == nil {
		opts.Drivers = testDrivers()
	}
	return Load(opts)
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
	cfg := mustLoad(t, Options{})
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
	if s.Name != "default" || s.Driver.Name != "memory" {
		t.Errorf("storage = %s(%s), want default(memory)", s.Name, s.Driver.Name)
	}
	if _, ok := s.Settings.(*memory.Config); !ok {
		t.Errorf("settings = %T, want *memory.Config", s.Settings)
	}
	if cfg.OTel.Enabled() || len(cfg.Warnings) != 0 {
		t.Errorf("otel enabled %v, warnings %q", cfg.OTel.Enabled(), cfg.Warnings)
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
	cfg := mustLoad(t, Options{File: path, LookupEnv: envMap(map[string]string{
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
	cfg := mustLoad(t, Options{
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
	if d := storage(t, cfg, "default"); d.Driver.Name != "memory" {
		t.Errorf("kv.default.driver = %q", d.Driver.Name)
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
	_, err := load(Options{LookupEnv: envMap(nil), Overrides: []string{
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
	cfg := mustLoad(t, Options{File: path})
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
	_, err := load(Options{File: path, LookupEnv: envMap(nil)})
	assertProblems(t, err, []string{`sessions.interval: cannot decode "soon" as int`})
}

// rrFile is a real-world .rr.yaml: other plugins' sections, RR-only keys in
// logs, and one storage per driver.
const rrFile = "testdata/rr.yaml"

func TestLoadConfig_RealisticRRFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := mustLoad(t, Options{
		File:      rrFile,
		LookupEnv: envMap(map[string]string{"DATA_DIR": dir, "REDIS_ADDR": "127.0.0.1:7379"}),
	})
	var got []string
	for _, s := range cfg.Storages {
		got = append(got, s.Name+"("+s.Driver.Name+")")
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
	if cfg.RPC.Listen != DefaultListen || cfg.GracePeriod != 5*time.Second || cfg.Logs.Mode != "development" {
		t.Errorf("rpc %q grace %s logs %+v", cfg.RPC.Listen, cfg.GracePeriod, cfg.Logs)
	}
	// Other plugins' sections and RoadRunner-only logs keys are not ours to
	// complain about.
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings = %q, want none", cfg.Warnings)
	}
}

func TestLoadConfig_ClusterSection(t *testing.T) {
	t.Parallel()
	file := writeConfig(t, `
version: "3"
kv:
  default: {driver: memory, consistency: linearizable}
  files: {driver: boltdb, config: {file: f.db}}
cluster:
  node_id: n1
  data_dir: /var/lib/kvnode
  raft: {bind: "127.0.0.1:7000", heartbeat_timeout: 400ms, election_timeout: 800ms}
  peers: [{id: n1, address: "127.0.0.1:7000"}, {id: n2, address: "127.0.0.1:7001"}]
metrics: {address: "127.0.0.1:2112"}
`)
	env := map[string]string{"KVNODE_CLUSTER_NODE_ID": "n2", "KVNODE_CLUSTER_RAFT_BIND": "127.0.0.1:7001"}
	cfg := mustLoad(t, Options{File: file, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Overrides: []string{"cluster.raft.bind=127.0.0.1:7009", "cluster.peers.1.address=127.0.0.1:7009"}})
	cc := cfg.ClusterConfig
	if cc == nil {
		t.Fatal("cluster section not decoded")
	}
	// Precedence: file < KVNODE_* env < -o.
	if cc.NodeID != "n2" || cc.Raft.Bind != "127.0.0.1:7009" || cc.Raft.Advertise != "127.0.0.1:7009" {
		t.Errorf("node_id=%q bind=%q advertise=%q", cc.NodeID, cc.Raft.Bind, cc.Raft.Advertise)
	}
	if cc.Raft.HeartbeatTimeout != 400*time.Millisecond || cc.Raft.ElectionTimeout != 800*time.Millisecond || cc.ApplyTimeout == 0 {
		t.Errorf("timeouts not decoded or defaulted: %+v", cc.Raft)
	}
	if len(cc.Peers) != 2 || cc.Peers[1].ID != "n2" {
		t.Errorf("peers = %+v", cc.Peers)
	}
	if cfg.Storages[0].Consistency != cluster.ReadLinearizable || cfg.Storages[1].Consistency != cluster.ReadLocal {
		t.Errorf("consistency = %v, %v", cfg.Storages[0].Consistency, cfg.Storages[1].Consistency)
	}
}

func TestLoadConfig_ClusterFromEnvironmentOnly(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"KVNODE_CLUSTER_NODE_ID":        "n1",
		"KVNODE_CLUSTER_DATA_DIR":       "/data",
		"KVNODE_CLUSTER_RAFT_BIND":      "0.0.0.0:7000",
		"KVNODE_CLUSTER_RAFT_ADVERTISE": "node1:7000",
		"KVNODE_CLUSTER_PEERS":          "n1=node1:7000, n2=node2:7000,n3=node3:7000",
	}
	// Bound to every interface without TLS: refused, naming the opt-out.
	_, err := load(Options{LookupEnv: envMap(env)})
	if err == nil || !strings.Contains(err.Error(), "cluster.raft.bind") || !strings.Contains(err.Error(), "KVNODE_CLUSTER_INSECURE=true") {
		t.Fatalf("no TLS on 0.0.0.0: %v", err)
	}
	env["KVNODE_CLUSTER_INSECURE"] = "true"
	cfg := mustLoad(t, Options{LookupEnv: envMap(env)})
	cc := cfg.ClusterConfig
	if cc == nil || cc.NodeID != "n1" || cc.Raft.Advertise != "node1:7000" || len(cc.Peers) != 3 || cc.Peers[2].Address != "node3:7000" || !cc.Insecure {
		t.Fatalf("cluster from env = %+v", cc)
	}
}

func TestLoadConfig_ClusterProblemsAreListed(t *testing.T) {
	t.Parallel()
	_, err := load(Options{File: writeConfig(t, `
version: "3"
kv: {default: {driver: memory, consistency: strict}}
cluster:
  raft: {bind: "0.0.0.0:7000", heartbeat_timeout: soon}
`)})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"kv.default.consistency", "cluster.raft.heartbeat_timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	_, err = load(Options{File: writeConfig(t, `
version: "3"
kv: {default: {driver: memory}}
cluster:
  raft: {bind: "0.0.0.0:7000"}
`)})
	for _, want := range []string{"cluster.node_id", "cluster.data_dir", "cluster.raft.advertise"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

func TestLoadConfig_WarnsAboutUnknownDriverFields(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, Options{File: writeConfig(t, `
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
		"kv.files.colour: unknown field, ignored (want driver, config, consistency)",
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
		_, err := load(Options{File: path, LookupEnv: envMap(nil)})
		if tc.problem == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.yaml, err)
			}
			continue
		}
		assertProblems(t, err, []string{tc.problem})
	}
}
