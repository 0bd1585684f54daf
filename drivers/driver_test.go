package drivers_test

import (
	"slices"
	"testing"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memory"
)

func TestRegistry_LooksUpInOrder(t *testing.T) {
	r := drivers.NewRegistry(memory.Driver(), boltdb.Driver())
	if got := r.Names(); !slices.Equal(got, []string{"memory", "boltdb"}) {
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
