package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
	goridgerpc "github.com/roadrunner-server/goridge/v3/pkg/rpc"

	"github.com/kvnode/kvnode/config"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/drivers/redis"
	"github.com/kvnode/kvnode/internal/testsvc"
)

// syncBuffer is a bytes.Buffer that the server writes to while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a serve call in progress.
type running struct {
	addr           string // rpc DSN from the start-up log line
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan error
}

var servingLine = regexp.MustCompile(`msg="kvnode serving" rpc=(\S+) storages=(\S+)`)

// runVerb runs the binary's dispatcher in-process and returns its exit
// status and output.
func runVerb(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// mustVerb runs a verb that has to succeed and returns its stdout.
func mustVerb(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := runVerb(t, args...)
	if code != 0 {
		t.Fatalf("kvnode %q: exit %d, stderr %q", args, code, errs)
	}
	return out
}

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

// startServe runs serve in-process and waits for its start-up line.
func startServe(t *testing.T, load config.Options) *running {
	t.Helper()
	if load.LookupEnv == nil {
		load.LookupEnv = envMap(nil)
	}
	if load.Drivers == nil {
		load.Drivers = storageDrivers()
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- serve(ctx, serveOptions{load: load, stdout: r.stdout, stderr: r.stderr}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			_ = err // tests that care read r.done themselves
		case <-time.After(30 * time.Second):
			t.Error("serve did not return after cancel")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := servingLine.FindStringSubmatch(r.stderr.String()); m != nil {
			r.addr = m[1]
			return r
		}
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("serve returned before serving: %v\nlog:\n%s", err, r.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no start-up line within 20s; log:\n%s", r.stderr)
		}
	}
}

// poll calls cond every 10ms until it holds or timeout passes.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-time.After(10 * time.Millisecond)
	}
	return true
}

// stop cancels serve (as SIGTERM does) and returns its result.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop within 30s; log:\n%s", r.stderr)
		return nil
	}
}

// dialKV connects a goridge net/rpc client, as RoadRunner's Go client does.
func dialKV(t *testing.T, dsn string) *rpc.Client {
	t.Helper()
	network, address, err := config.ParseListen(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout(network, address, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := rpc.NewClientWithCodec(goridgerpc.NewClientCodec(conn))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// setAndGet stores key=value in storage and reads it back.
func setAndGet(t *testing.T, c *rpc.Client, storage, key, value string) {
	t.Helper()
	set := &kvv1.Request{Storage: storage, Items: []*kvv1.Item{{Key: key, Value: []byte(value)}}}
	if err := c.Call("kv.Set", set, &kvv1.Response{}); err != nil {
		t.Fatalf("%s: kv.Set: %v", storage, err)
	}
	got := &kvv1.Response{}
	if err := c.Call("kv.MGet", &kvv1.Request{Storage: storage, Items: []*kvv1.Item{{Key: key}, {Key: "missing-" + key}}}, got); err != nil {
		t.Fatalf("%s: kv.MGet: %v", storage, err)
	}
	if len(got.GetItems()) != 1 || got.GetItems()[0].GetKey() != key || string(got.GetItems()[0].GetValue()) != value {
		t.Fatalf("%s: kv.MGet = %v, want only %s=%s", storage, got.GetItems(), key, value)
	}
}

func TestServe_RealisticConfigServesEveryDriver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{
		"DATA_DIR":       dir,
		"REDIS_ADDR":     testsvc.Redis(t),
		"MEMCACHED_ADDR": testsvc.Memcached(t),
		"RPC_LISTEN":     "tcp://127.0.0.1:0",
	}
	// The real-world .rr.yaml the config package's tests load.
	rrFile := filepath.Join("..", "..", "config", "testdata", "rr.yaml")
	r := startServe(t, config.Options{File: rrFile, LookupEnv: envMap(env)})

	m := servingLine.FindStringSubmatch(r.stderr.String())
	if m[2] != "local(memory),files(boltdb),cache(redis),sessions(memcached)" {
		t.Errorf("start-up line names storages %q", m[2])
	}
	if strings.HasSuffix(r.addr, ":0") || !strings.HasPrefix(r.addr, "tcp://127.0.0.1:") {
		t.Errorf("start-up line says rpc=%s, want the bound port", r.addr)
	}
	c := dialKV(t, r.addr)
	for _, s := range []string{"local", "files", "cache", "sessions"} {
		setAndGet(t, c, s, "k-"+s, "v-"+s)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("serve: %v\nlog:\n%s", err, r.stderr)
	}
	if log := r.stderr.String(); !strings.Contains(log, `msg="kvnode stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", log)
	}

	// The boltdb file was closed: it opens again at once and kept the key.
	e, err := boltdb.Open(boltdb.Config{File: filepath.Join(dir, "files.db"), LockTimeout: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatalf("reopen boltdb file: %v", err)
	}
	defer func() { _ = e.Close() }()
	items, err := e.MGet(time.Now().UnixNano(), []string{"k-files"})
	if err != nil || len(items) != 1 || string(items[0].Value) != "v-files" {
		t.Errorf("boltdb after restart: %v %v", items, err)
	}
}

func TestServe_UnixSocketWithStdoutTracing(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "kv.sock")
	r := startServe(t, config.Options{Overrides: []string{
		"rpc.listen=unix://" + sock,
		"otel.exporter=stdout",
		"otel.resource.service_instance_id=node-1",
	}})
	if r.addr != "unix://"+sock {
		t.Errorf("rpc=%s, want unix://%s", r.addr, sock)
	}
	setAndGet(t, dialKV(t, r.addr), "default", "traced", "yes")
	if err := r.stop(t); err != nil {
		t.Fatalf("serve: %v", err)
	}
	// Spans are batched and flushed at shutdown.
	out := r.stdout.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`"Name":\s*"kv:set"`),
		regexp.MustCompile(`"Name":\s*"memory:set"`),
		regexp.MustCompile(`"Key":\s*"service.instance.id",\s*"Value":\s*\{\s*"Type":\s*"STRING",\s*"Value":\s*"node-1"`),
		regexp.MustCompile(`"Key":\s*"service.name",\s*"Value":\s*\{\s*"Type":\s*"STRING",\s*"Value":\s*"kvnode"`),
	} {
		if !want.MatchString(out) {
			t.Errorf("stdout has no %s; got:\n%.2000s", want, out)
		}
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left behind: %v", err)
	}
}

func TestServe_StartUpFailureListsEveryProblem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	notBolt := filepath.Join(dir, "not-bolt.db")
	if err := os.WriteFile(notBolt, bytes.Repeat([]byte("not a bolt file "), 512), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.db")
	path := writeConfig(t, `
version: "3"
rpc: {listen: "tcp://`+busy.Addr().String()+`"}
kv:
  sessions: {driver: bolt}
  cache: {config: {}}
  broken: {driver: boltdb, config: {file: `+notBolt+`}}
  nodir: {driver: boltdb, config: {file: `+filepath.Join(dir, "no", "such", "dir.db")+`}}
  good: {driver: boltdb, config: {file: `+good+`}}
  shared: {driver: redis, config: {addrs: ["127.0.0.1"]}}
`)
	var stdout, stderr syncBuffer
	err = serve(t.Context(), serveOptions{load: config.Options{File: path, LookupEnv: envMap(nil), Drivers: storageDrivers()}, stdout: &stdout, stderr: &stderr})
	if !errors.Is(err, config.ErrInvalidConfig) {
		t.Fatalf("serve = %v, want a configuration error", err)
	}
	for _, want := range []string{
		`kv.sessions.driver: unknown driver "bolt" (want memory, boltdb, redis, memcached)`,
		`kv.cache.driver: missing`,
		`kv.shared.config.addrs[0] "127.0.0.1": want host:port`,
		`kv.broken.config.file: boltdb: open "` + notBolt + `": not a bolt database`,
		`kv.nodir.config.file: boltdb: open "` + filepath.Join(dir, "no", "such", "dir.db") + `"`,
		`rpc.listen: rpc: listen tcp://` + busy.Addr().String() + `: `,
	} {
		if !strings.Contains(err.Error(), "\n  "+want) {
			t.Errorf("error does not list %q:\n%v", want, err)
		}
	}
	if strings.Contains(stderr.String(), "kvnode serving") {
		t.Errorf("logged serving despite errors:\n%s", stderr.String())
	}
	// The valid storage was opened to look for problems, and closed again.
	e, oerr := boltdb.Open(boltdb.Config{File: good, LockTimeout: 100 * time.Millisecond}, nil)
	if oerr != nil {
		t.Fatalf("good.db still locked after failed start-up: %v", oerr)
	}
	_ = e.Close()
}

func TestRun_Dispatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"version"}, 0, "kvnode ", ""},
		{[]string{"help"}, 0, "Commands:\n  serve", ""},
		{[]string{"-h"}, 0, "Usage: kvnode", ""},
		{[]string{"serve", "-h"}, 0, "", "-o value"},
		{[]string{"nope"}, 2, "", `unknown command "nope"`},
		{[]string{"serve", "-x"}, 2, "", "flag provided but not defined: -x"},
		{[]string{"serve", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"version", "extra"}, 2, "", "version takes no arguments"},
		{[]string{"-c", "/does/not/exist.yaml"}, 1, "", "kvnode serve: read config: open /does/not/exist.yaml"},
		{[]string{"-o", "kv.default.driver=bolt"}, 1, "", `kv.default.driver: unknown driver "bolt"`},
	} {
		var stdout, stderr syncBuffer
		code := run(t.Context(), tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.inStdout) || !strings.Contains(stderr.String(), tc.inStderr) {
			t.Errorf("run %q = %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, stdout.String(), stderr.String())
		}
	}
	names := map[string]bool{}
	for _, c := range commands() {
		names[c.Name] = true
	}
	for _, n := range []string{"serve", "get", "set", "del", "has", "ttl", "expire", "clear", "bench", "version"} {
		if !names[n] {
			t.Errorf("command %q missing from commands()", n)
		}
	}
}

func TestRun_FlagsAloneServeTheEmbeddedDefault(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"-o", "rpc.listen=tcp://127.0.0.1:0"}, &stdout, &stderr) }()
	var m []string
	if !poll(20*time.Second, func() bool { m = servingLine.FindStringSubmatch(stderr.String()); return m != nil }) {
		cancel()
		t.Fatalf("not serving:\n%s", stderr.String())
	}
	if m[2] != "default(memory)" {
		t.Errorf("storages = %s, want default(memory)", m[2])
	}
	setAndGet(t, dialKV(t, m[1]), "default", "k", "v")
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit code %d, log:\n%s", c, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestSoftMemoryLimit(t *testing.T) {
	bounded := func(name string, n int64) config.StorageConfig {
		return config.StorageConfig{Name: name, Driver: memory.Driver(), Limits: drivers.Limits{MaxBytes: n}}
	}
	two := []config.StorageConfig{bounded("a", 1<<30), bounded("b", 1<<30), {Name: "r", Driver: redis.Driver()}}
	if got, want := softMemoryLimit(two, envMap(nil)), int64(2<<30+512<<20+gcFixedRoom); got != want {
		t.Errorf("two bounded storages: %d, want %d", got, want)
	}
	if got := softMemoryLimit(two, envMap(map[string]string{"GOMEMLIMIT": "1GiB"})); got != 0 {
		t.Errorf("with GOMEMLIMIT set: %d, want 0", got)
	}
	keysOnly := append(two, config.StorageConfig{Name: "k", Driver: memory.Driver(), Limits: drivers.Limits{MaxKeys: 10}})
	if got := softMemoryLimit(keysOnly, envMap(nil)); got != 0 {
		t.Errorf("with a storage bounded by keys only: %d, want 0", got)
	}
	if got := softMemoryLimit([]config.StorageConfig{{Name: "r", Driver: redis.Driver()}}, envMap(nil)); got != 0 {
		t.Errorf("no memory storage: %d, want 0", got)
	}
}
