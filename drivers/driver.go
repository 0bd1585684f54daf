package drivers

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Driver describes one storage driver to the program that serves it: the
// name kv.<name>.driver gives, how a storage's settings are decoded and the
// storage opened, and what RoadRunner's clients see of the driver. Each
// driver package returns its own (memory.Driver()); the command lists them
// in one Registry, so a new driver is its package plus one entry there.
type Driver struct {
	// Name is the value of kv.<name>.driver ("memory").
	Name string
	// NewConfig returns a pointer to a zero settings struct for one
	// storage. The configuration loader decodes the storage's section into
	// it by its yaml tags, then calls its InitDefaults() and Validate()
	// error methods when it has them. Required.
	NewConfig func() any
	// Open opens a storage this node serves alone (every storage of a
	// standalone node; in a cluster, those of drivers without OpenEngine)
	// from the settings NewConfig made, decoded and validated. An error
	// whose text starts with a settings field's yaml name and ": " is
	// reported under that field ("file: ..."). Required.
	Open func(settings any, env Env) (Store, error)
	// OpenEngine, when set, makes the driver's storages replicable: in a
	// cluster raft replicates the Engine it opens, and Open is not used.
	OpenEngine func(settings any, env Env) (Engine, error)
	// File, when set, is the file a storage keeps, given its settings and
	// the directory relative paths are taken in ("" for the working
	// directory): no two storages may share one, and a cluster recovering
	// from lost raft state moves the replicated storages' files aside.
	File func(settings any, dir string) string

	// ErrorOp is the prefix RoadRunner's driver puts before its own errors,
	// completed with the method ("in_memory_plugin_" + "mget"); Name +
	// "_driver_" when empty.
	ErrorOp string
	// TTLRefusal, when set, is what RoadRunner's driver answers every
	// kv.TTL with, whatever the keys (memcached cannot read expiries); the
	// Store then returns ErrNotSupported for TTL.
	TTLRefusal string
	// Inline marks a driver whose standalone calls finish in microseconds
	// without I/O (memory): the RPC server may run them on the connection's
	// reader goroutine. Replicated storages are never inline.
	Inline bool
	// Unbounded says why the driver takes no bound settings (max_memory,
	// max_keys, eviction), for a driver whose settings do not implement
	// BoundSettings.
	Unbounded string
}

// Replicable reports whether a cluster replicates the driver's storages.
func (d Driver) Replicable() bool { return d.OpenEngine != nil }

// Boundable reports whether the driver's storages take bound settings:
// its settings implement BoundSettings.
func (d Driver) Boundable() bool {
	if d.NewConfig == nil {
		return false
	}
	_, ok := d.NewConfig().(BoundSettings)
	return ok
}

// DefaultSettings is NewConfig with InitDefaults applied: the settings of
// a storage whose section is empty, for programs that open storages
// without a configuration file (test harnesses).
func (d Driver) DefaultSettings() any {
	s := d.NewConfig()
	if i, ok := s.(interface{ InitDefaults() }); ok {
		i.InitDefaults()
	}
	return s
}

// BoundSettings is implemented by the settings of a driver whose storages
// can be bounded (max_memory, max_keys, eviction, eviction_samples). The
// loader resolves them into Limits and passes those to Open in Env.
type BoundSettings interface {
	// MemoryShare is max_memory when it is a share of the memory the
	// process may use ("25%"), which the loader must measure; else "".
	MemoryShare() string
	// Limits resolves the bounds, a share taken of total bytes.
	Limits(total int64) (Limits, error)
	// Samples is lru's keys sampled per victim (0: DefaultSamples).
	Samples() int
}

// Env is what opening a storage needs besides its settings.
type Env struct {
	// Storage is the storage's name (the key under kv:).
	Storage string
	// Logger receives the storage's logs; nil discards them.
	Logger *slog.Logger
	// TracerProvider gives the storage its tracer; nil: no spans.
	TracerProvider trace.TracerProvider
	// Clock is the wall clock a standalone engine's writes are stamped
	// with (time.Now when nil).
	Clock func() time.Time
	// Limits and EvictionSamples are a boundable storage's resolved bound
	// settings (zero: unbounded).
	Limits          Limits
	EvictionSamples int
	// DataDir is the directory a replicated storage's relative files are
	// taken in (cluster.data_dir), so that nodes sharing a working
	// directory never share a file; "" for a standalone storage.
	DataDir string
	// Unsynced tells a replicated storage's persistent engine that its
	// writes are durable in the raft log: it need not fsync each Apply
	// (bbolt's two fdatasyncs per batch on every node), and it is rebuilt
	// from the log after an OS crash (cluster.CheckEngineFiles). It must
	// still leave its files whole on Close.
	Unsynced bool
	// Given reports whether the storage's section gave key a value, for a
	// driver whose behaviour without the key differs from that with its
	// default value (nil: no key was given).
	Given func(key string) bool
}

// StandaloneOptions are the options of a Standalone serving this storage's engine
// for driver: its name, clock, logger, bounds and a tracer named after
// the driver's package.
func (e Env) StandaloneOptions(driver string) StandaloneOptions {
	o := StandaloneOptions{Driver: driver, Storage: e.Storage, Logger: e.Logger, Clock: e.Clock,
		EvictionSamples: e.EvictionSamples}
	if e.TracerProvider != nil {
		o.Tracer = e.TracerProvider.Tracer("github.com/kvnode/kvnode/drivers/" + driver)
	}
	return o
}

// Registry is the drivers a program serves, in the order messages list
// them. It is built once, explicitly, by the program (no driver registers
// itself), and never changes.
type Registry struct {
	list []Driver
}

// NewRegistry lists ds. A driver without a name, NewConfig or Open, or a
// name given twice, is a programming error and panics.
func NewRegistry(ds ...Driver) *Registry {
	r := &Registry{}
	for _, d := range ds {
		switch {
		case strings.TrimSpace(d.Name) == "":
			panic("drivers: a driver without a name")
		case d.NewConfig == nil || d.Open == nil:
			panic(fmt.Sprintf("drivers: driver %q lacks NewConfig or Open", d.Name))
		}
		if _, dup := r.Lookup(d.Name); dup {
			panic(fmt.Sprintf("drivers: driver %q listed twice", d.Name))
		}
		r.list = append(r.list, d)
	}
	return r
}

// Lookup returns the driver named name.
func (r *Registry) Lookup(name string) (Driver, bool) {
	if r != nil {
		for _, d := range r.list {
			if d.Name == name {
				return d, true
			}
		}
	}
	return Driver{}, false
}

// Names lists the drivers' names in registration order.
func (r *Registry) Names() []string {
	if r == nil {
		return nil
	}
	out := make([]string, len(r.list))
	for i, d := range r.list {
		out[i] = d.Name
	}
	return out
}
