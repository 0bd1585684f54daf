package drivers_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memcached"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/drivers/redis"
)

func TestRegistry_LooksUpInOrder(t *testing.T) {
	r := drivers.NewRegistry(memory.Driver(), boltdb.Driver(), redis.Driver(), memcached.Driver())
	if got := r.Names(); !slices.Equal(got, []string{"memory", "boltdb", "redis", "memcached"}) {
		t.Errorf("Names() = %q", got)
	}
	d, ok := r.Lookup("boltdb")
	if !ok || d.Name != "boltdb" {
		t.Errorf("Lookup(boltdb) = %q, %t", d.Name, ok)
	}
	if d, ok := r.Lookup("Memory"); ok {
		t.Errorf("Lookup(Memory) = %q: names are case-sensitive", d.Name)
	}
	var none *drivers.Registry
	if _, ok := none.Lookup("memory"); ok || none.Names() != nil {
		t.Error("a nil registry knows drivers")
	}
}

func TestNewRegistry_RefusesBadLists(t *testing.T) {
	for name, ds := range map[string][]drivers.Driver{
		"twice":     {memory.Driver(), boltdb.Driver(), memory.Driver()},
		"nameless":  {{NewConfig: memory.Driver().NewConfig, Open: memory.Driver().Open}},
		"no Open":   {{Name: "x", NewConfig: memory.Driver().NewConfig}},
		"no config": {{Name: "x", Open: memory.Driver().Open}},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("NewRegistry did not panic")
				}
			}()
			drivers.NewRegistry(ds...)
		})
	}
}

// The capabilities callers used to test by driver name.
func TestDriver_Capabilities(t *testing.T) {
	for _, tt := range []struct {
		d                                  drivers.Driver
		replicable, boundable, inline, ttl bool
		errorOp                            string
	}{
		{memory.Driver(), true, true, true, true, "in_memory_plugin_"},
		{boltdb.Driver(), true, false, false, true, "boltdb_driver_"},
		{redis.Driver(), false, false, false, true, "redis_driver_"},
		{memcached.Driver(), false, false, false, false, "memcached_plugin_"},
	} {
		d := tt.d
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

func TestBoltdbDriver_FileIsTakenInTheDataDir(t *testing.T) {
	d := boltdb.Driver()
	settings := d.DefaultSettings()
	if got := d.File(settings, ""); got != boltdb.DefaultFile {
		t.Errorf("File(default, \"\") = %q, want %q", got, boltdb.DefaultFile)
	}
	dir := t.TempDir()
	want := filepath.Join(dir, boltdb.DefaultFile)
	if got := d.File(settings, dir); got != want {
		t.Errorf("File(default, dir) = %q, want %q", got, want)
	}
	e, err := d.OpenEngine(settings, drivers.Env{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Close() }()
	if _, err := boltdb.Open(boltdb.Config{File: want, LockTimeout: 1}, nil); err == nil {
		t.Errorf("%s is not the engine's (locked) file", want)
	}
}
