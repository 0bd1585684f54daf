package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"

	"github.com/kvnode/kvnode/config"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
)

// toyConfig is the toy driver's settings: it keeps values under Prefix+key,
// so the test sees that the storage's section reached Open.
type toyConfig struct {
	Prefix string `yaml:"prefix"`
}

func (c *toyConfig) Validate() error {
	if c.Prefix == "" {
		return errors.New("prefix: must not be empty")
	}
	return nil
}

// toyStore is a map behind a mutex: a driver as small as one gets.
type toyStore struct {
	mu     sync.Mutex
	prefix string
	m      map[string][]byte
}

func (s *toyStore) Has(_ context.Context, keys []string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range keys {
		if _, ok := s.m[s.prefix+k]; ok {
			out = append(out, k)
		}
	}
	return out, nil
}

func (s *toyStore) MGet(_ context.Context, keys []string) ([]drivers.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []drivers.Item
	for _, k := range keys {
		if v, ok := s.m[s.prefix+k]; ok {
			out = append(out, drivers.Item{Key: k, Value: v})
		}
	}
	return out, nil
}

func (s *toyStore) TTL(context.Context, []string) ([]drivers.Item, error) {
	return nil, nil
}

func (s *toyStore) Set(_ context.Context, items []drivers.Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		s.m[s.prefix+it.Key] = slices.Clone(it.Value)
	}
	return nil
}

func (s *toyStore) MExpire(context.Context, []drivers.Item) error { return nil }

func (s *toyStore) Delete(_ context.Context, keys []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.m, s.prefix+k)
	}
	return nil
}

func (s *toyStore) Clear(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.m)
	return nil
}

func (s *toyStore) Close() error { return nil }

// keys lists what the store holds, prefixes included.
func (s *toyStore) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.m))
}

// toyDriver describes the toy driver; opened reports each store it opens.
func toyDriver(opened chan<- *toyStore) drivers.Driver {
	return drivers.Driver{
		Name:      "toy",
		NewConfig: func() any { return &toyConfig{} },
		Open: func(settings any, _ drivers.Env) (drivers.Store, error) {
			s := &toyStore{prefix: settings.(*toyConfig).Prefix, m: map[string][]byte{}}
			opened <- s
			return s, nil
		},
		ErrorOp: "toy_plugin_",
	}
}

// A driver kvnode has never heard of is one package (here, this file) and
// one registration: configured, opened and served over RPC end to end.
func TestServe_DriverRegisteredOnlyInATest(t *testing.T) {
	t.Parallel()
	opened := make(chan *toyStore, 1)
	reg := drivers.NewRegistry(memory.Driver(), toyDriver(opened))
	r := startServe(t, config.Options{Drivers: reg, File: writeConfig(t, `
version: "3"
rpc: {listen: tcp://127.0.0.1:0}
kv:
  toys: {driver: toy, config: {prefix: "t:"}}
  default: {driver: memory}
`)})
	if !strings.Contains(r.stderr.String(), "storages=toys(toy),default(memory)") {
		t.Errorf("start-up line does not list the toy storage:\n%s", r.stderr)
	}
	store := <-opened
	c := dialKV(t, r.addr)
	setAndGet(t, c, "toys", "k", "v")
	if got := store.keys(); !slices.Equal(got, []string{"t:k"}) {
		t.Errorf("toy store holds %q, want [t:k]: the settings did not reach Open", got)
	}
	// RoadRunner-style error texts carry the driver's own prefix.
	err := c.Call("kv.Has", &kvv1.Request{Storage: "toys", Items: []*kvv1.Item{{Key: " "}}}, &kvv1.Response{})
	if want := "rpc_has: key can't be empty string:\n\ttoy_plugin_has"; err == nil || err.Error() != want {
		t.Errorf("kv.Has with a blank key: %v, want %q", err, want)
	}
}

// The toy driver's settings are decoded and validated like any other's, and
// only the registry that lists it knows it.
func TestLoadConfig_DriverRegisteredOnlyInATest(t *testing.T) {
	t.Parallel()
	file := writeConfig(t, `
version: "3"
kv:
  toys: {driver: toy, config: {prefix: "", colour: red}}
`)
	_, err := config.Load(config.Options{File: file, LookupEnv: envMap(nil),
		Drivers: drivers.NewRegistry(memory.Driver(), toyDriver(nil))})
	var ce *config.Error
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Error() != "kv.toys.config.prefix: must not be empty" {
		t.Errorf("want one problem, kv.toys.config.prefix: must not be empty; got %v", err)
	}

	_, err = config.Load(config.Options{File: file, LookupEnv: envMap(nil), Drivers: storageDrivers()})
	if !errors.Is(err, config.ErrUnknownDriver) || !strings.Contains(err.Error(), fmt.Sprintf(
		`kv.toys.driver: unknown driver "toy" (want %s)`, strings.Join(storageDrivers().Names(), ", "))) {
		t.Errorf("the default registry: %v", err)
	}
}

// kvnode registers its four drivers with the capabilities callers used to
// test by driver name.
func TestStorageDrivers_Capabilities(t *testing.T) {
	reg := storageDrivers()
	if got := reg.Names(); !slices.Equal(got, []string{"memory", "boltdb", "redis", "memcached"}) {
		t.Errorf("drivers %q", got)
	}
	for _, tt := range []struct {
		name                               string
		replicable, boundable, inline, ttl bool
		errorOp                            string
	}{
		{"memory", true, true, true, true, "in_memory_plugin_"},
		{"boltdb", true, false, false, true, "boltdb_driver_"},
		{"redis", false, false, false, true, "redis_driver_"},
		{"memcached", false, false, false, false, "memcached_plugin_"},
	} {
		d, _ := reg.Lookup(tt.name)
		if d.Replicable() != tt.replicable || d.Boundable() != tt.boundable || d.Inline != tt.inline ||
			(d.TTLRefusal == "") != tt.ttl || d.ErrorOp != tt.errorOp {
			t.Errorf("%s: replicable %t, boundable %t, inline %t, TTL refused %t, error op %q", d.Name,
				d.Replicable(), d.Boundable(), d.Inline, d.TTLRefusal != "", d.ErrorOp)
		}
		if !d.Boundable() && d.Unbounded == "" {
			t.Errorf("%s takes no bounds and does not say why", d.Name)
		}
	}
}
