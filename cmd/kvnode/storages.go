package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"gopkg.in/yaml.v3"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memcached"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/drivers/redis"
	"github.com/kvnode/kvnode/internal/failpoint"
)

// driverNames lists the drivers in the order messages name them.
var driverNames = []string{"memory", "boltdb", "redis", "memcached"}

// localSweepInterval is how often a local engine removes expired keys. Reads
// hide expired keys at once, so sweeping only returns their space; a
// boltdb storage with an explicit interval (RoadRunner's GC period, in
// seconds) sweeps at that period instead.
const localSweepInterval = time.Second

// storageEnv is what opening a storage needs besides its settings.
type storageEnv struct {
	logger *slog.Logger
	// tp is the tracer provider for pass-through drivers; nil disables spans.
	tp trace.TracerProvider
}

// driverSpec is how kvnode configures and opens one driver.
type driverSpec struct {
	// newConfig returns a pointer to the driver's zero Config.
	newConfig func() any
	// open builds the Store from the validated settings.
	open func(sc *StorageConfig, env storageEnv) (drivers.Store, error)
}

func driverSpecs() map[string]driverSpec {
	return map[string]driverSpec{
		"memory": {
			newConfig: func() any { return &memory.Config{} },
			open: func(sc *StorageConfig, env storageEnv) (drivers.Store, error) {
				o := localOptions("memory", localSweepInterval, env)
				o.Storage, o.EvictionSamples = sc.Name, sc.EvictionSamples
				l := drivers.NewLocal(memory.New(), o)
				if sc.Limits.Bounded() {
					if err := l.SetLimits(context.Background(), sc.Limits); err != nil {
						_ = l.Close()
						return nil, err //nolint:wrapcheck // reported under the storage's path
					}
					env.logger.Info("storage bounded", "limits", sc.Limits.String(), "max_memory_of", sc.LimitSource)
				}
				return l, nil
			},
		},
		"boltdb": {
			newConfig: func() any { return &boltdb.Config{} },
			open: func(sc *StorageConfig, env storageEnv) (drivers.Store, error) {
				cfg := sc.Settings.(*boltdb.Config)
				e, err := boltdb.Open(*cfg, env.logger)
				if err != nil {
					return nil, err //nolint:wrapcheck // reported under the storage's path
				}
				sweep := localSweepInterval
				if hasKey(sc.Node, "interval") {
					sweep = cfg.SweepInterval()
				}
				return drivers.NewLocal(e, localOptions("boltdb", sweep, env)), nil
			},
		},
		"redis": {
			newConfig: func() any { return &redis.Config{} },
			open: func(sc *StorageConfig, env storageEnv) (drivers.Store, error) {
				return redis.New(*sc.Settings.(*redis.Config), env.tp, env.logger) //nolint:wrapcheck // reported under the storage's path
			},
		},
		"memcached": {
			newConfig: func() any { return &memcached.Config{} },
			open: func(sc *StorageConfig, env storageEnv) (drivers.Store, error) {
				return memcached.New(*sc.Settings.(*memcached.Config), env.tp, env.logger) //nolint:wrapcheck // reported under the storage's path
			},
		},
	}
}

func localOptions(driver string, sweep time.Duration, env storageEnv) drivers.LocalOptions {
	o := drivers.LocalOptions{Driver: driver, SweepInterval: sweep, Logger: env.logger, Clock: failpoint.Now}
	if env.tp != nil {
		o.Tracer = env.tp.Tracer("github.com/kvnode/kvnode/drivers/" + driver)
	}
	return o
}

// hasKey reports whether mapping n sets key to a non-null value.
func hasKey(n *yaml.Node, key string) bool {
	n = resolve(n)
	return n != nil && n.Kind == yaml.MappingNode && !isNull(lookupKey(n, key))
}

// decodeStorages reads the kv section. A storage without kv.<name>.config
// takes its settings from the top-level section named <name>, as
// RoadRunner does. Each storage's settings are decoded into its driver's
// Config, defaulted and validated; every problem is recorded.
func decodeStorages(root, kv *yaml.Node, p *problems) []StorageConfig {
	kv = resolve(kv)
	if isNull(kv) {
		p.addf("kv", "no storages configured (want kv.<name>.driver)")
		return nil
	}
	if kv.Kind != yaml.MappingNode {
		p.addf("kv", "want a mapping of storage names, got %s", kindName(kv))
		return nil
	}
	specs := driverSpecs()
	var out []StorageConfig
	for _, s := range mappingPairs(kv, "kv", p) {
		path := joinPath("kv", s.key)
		if strings.TrimSpace(s.key) == "" {
			p.addf(path, "storage name must not be empty")
			continue
		}
		entry := resolve(s.value)
		if isNull(entry) || entry.Kind != yaml.MappingNode {
			what := "nothing"
			if !isNull(entry) {
				what = kindName(entry)
			}
			p.addf(path, "want a mapping with driver and config, got %s", what)
			continue
		}
		sc := StorageConfig{Name: s.key}
		var cfgNode *yaml.Node
		driverSeen := false
		for _, f := range mappingPairs(entry, path, p) {
			switch f.key {
			case "driver":
				driverSeen = true
				sc.Driver = decodeDriver(f.value, path+".driver", p)
			case "config":
				cfgNode = f.value
			case "consistency":
				sc.Consistency = decodeConsistency(f.value, path+".consistency", p)
			default:
				p.warnf(joinPath(path, f.key), "unknown field, ignored (want driver, config, consistency)")
			}
		}
		if !driverSeen {
			p.addf(path+".driver", "missing (want %s)", strings.Join(driverNames, ", "))
		}
		switch {
		case !isNull(cfgNode):
			sc.Node, sc.ConfigPath = cfgNode, path+".config"
		case !isNull(lookupKey(root, s.key)):
			sc.Node, sc.ConfigPath = lookupKey(root, s.key), s.key
		default:
			sc.ConfigPath = path + ".config"
		}
		refuseBoundKeys(&sc, p)
		if spec, ok := specs[sc.Driver]; ok {
			sc.Settings = decodeSettings(spec, &sc, p)
			resolveLimits(&sc, p)
		}
		out = append(out, sc)
	}
	checkSharedFiles(out, p)
	return out
}

func decodeDriver(n *yaml.Node, path string, p *problems) string {
	n = resolve(n)
	want := strings.Join(driverNames, ", ")
	switch {
	case isNull(n):
		p.addf(path, "missing (want %s)", want)
		return ""
	case n.Kind != yaml.ScalarNode:
		p.addf(path, "want a driver name (%s), got %s", want, kindName(n))
		return ""
	}
	if _, ok := driverSpecs()[n.Value]; !ok {
		p.add(path, fmt.Errorf("%w %q (want %s)", ErrUnknownDriver, n.Value, want))
		return ""
	}
	return n.Value
}

// decodeSettings decodes, defaults and validates one storage's settings.
// It returns nil when they have problems, so the storage is not opened.
func decodeSettings(spec driverSpec, sc *StorageConfig, p *problems) any {
	cfg := spec.newConfig()
	before := len(p.errs)
	if sc.Node != nil {
		decodeValue(sc.Node, sc.ConfigPath, reflect.ValueOf(cfg).Elem(), p)
	}
	if len(p.errs) > before {
		return nil
	}
	if d, ok := cfg.(interface{ InitDefaults() }); ok {
		d.InitDefaults()
	}
	if v, ok := cfg.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			for _, e := range flatten(err) {
				p.errs = append(p.errs, attributeField(sc.ConfigPath, cfg, e))
			}
			return nil
		}
	}
	return cfg
}

// checkSharedFiles refuses two boltdb storages on one file: bbolt locks the
// file, so the second would wait for the first forever.
func checkSharedFiles(storages []StorageConfig, p *problems) {
	owner := map[string]string{}
	for _, sc := range storages {
		cfg, ok := sc.Settings.(*boltdb.Config)
		if !ok {
			continue
		}
		file, err := filepath.Abs(cfg.File)
		if err != nil {
			file = filepath.Clean(cfg.File)
		}
		if prev, dup := owner[file]; dup {
			p.addf(sc.ConfigPath+".file", "%q is already the file of storage %q (one bolt file serves one storage)", cfg.File, prev)
			continue
		}
		owner[file] = sc.Name
	}
}

// flatten splits an errors.Join result into its parts. Only a Join is
// split: fmt.Errorf("%w: %w", ErrConfig, err) also has Unwrap() []error,
// but it is one message. A Join's text is its parts' texts on separate
// lines, which tells the two apart.
func flatten(err error) []error {
	j, ok := err.(interface{ Unwrap() []error }) //nolint:errorlint // only the error's own parts are split
	if !ok {
		return []error{err}
	}
	parts := j.Unwrap()
	texts := make([]string, len(parts))
	for i, e := range parts {
		texts[i] = e.Error()
	}
	if strings.Join(texts, "\n") != err.Error() {
		return []error{err}
	}
	var out []error
	for _, e := range parts {
		out = append(out, flatten(e)...)
	}
	return out
}

// attributeField turns a driver's "invalid boltdb config: file: must not be
// empty" into the FieldError "kv.files.config.file: must not be empty":
// the first ": "-separated part of the message that starts with a field
// name of cfg becomes part of the path. A message naming no field is kept
// whole under base. The original error stays wrapped for errors.Is.
func attributeField(base string, cfg any, err error) error {
	fields := map[string]reflect.Value{}
	if v := reflect.ValueOf(cfg); v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
		collectFields(v.Elem(), fields)
	}
	msg := err.Error()
	rest := msg
	for range 3 {
		head, tail, ok := strings.Cut(rest, ": ")
		if !ok {
			break
		}
		ident := head
		if i := strings.IndexFunc(head, func(r rune) bool {
			return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}); i >= 0 {
			ident = head[:i]
		}
		if _, known := fields[ident]; known {
			return &FieldError{Path: joinPath(base, head), Err: &detail{msg: tail, err: err}}
		}
		rest = tail
	}
	return &FieldError{Path: base, Err: err}
}

// detail is an error shown with a shortened message but still matching the
// error it came from.
type detail struct {
	msg string
	err error
}

func (d *detail) Error() string { return d.msg }
func (d *detail) Unwrap() error { return d.err }

// openStorages opens every storage whose settings are valid. Failures are
// recorded under the storage's path (boltdb ones under its file field).
func openStorages(storages []StorageConfig, env storageEnv, clustered bool, p *problems) []namedStore {
	specs := driverSpecs()
	var out []namedStore
	for i := range storages {
		sc := &storages[i]
		spec, ok := specs[sc.Driver]
		if !ok || sc.Settings == nil || clustered && replicable(sc.Driver) {
			continue
		}
		senv := env
		senv.logger = env.logger.With("storage", sc.Name, "driver", sc.Driver)
		st, err := spec.open(sc, senv)
		if err != nil {
			if sc.Driver == "boltdb" && !errors.Is(err, boltdb.ErrConfig) {
				p.add(sc.ConfigPath+".file", err)
			} else {
				p.errs = append(p.errs, attributeField(sc.ConfigPath, sc.Settings, err))
			}
			continue
		}
		out = append(out, namedStore{name: sc.Name, driver: sc.Driver, store: st})
	}
	return out
}

// namedStore is an open storage and the name it is served under.
type namedStore struct {
	name, driver string
	store        drivers.Store
}

// closeStores closes every store, returning all failures.
func closeStores(stores []namedStore) error {
	var errs []error
	for _, s := range stores {
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close storage %q: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}
