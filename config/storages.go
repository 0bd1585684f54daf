package config

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/kvnode/kvnode/drivers"
)

// Given reports whether the storage's settings give key a value.
func (sc *StorageConfig) Given(key string) bool { return hasKey(sc.Node, key) }

// hasKey reports whether mapping n sets key to a non-null value.
func hasKey(n *yaml.Node, key string) bool {
	n = resolve(n)
	return n != nil && n.Kind == yaml.MappingNode && !isNull(lookupKey(n, key))
}

// decodeStorages reads the kv section. A storage without kv.<name>.config
// takes its settings from the top-level section named <name>, as
// RoadRunner does. Each storage's settings are decoded into its driver's
// Config, defaulted and validated; every problem is recorded.
func decodeStorages(root, kv *yaml.Node, reg *drivers.Registry, memory memoryLimit, p *Problems) []StorageConfig {
	kv = resolve(kv)
	if isNull(kv) {
		p.Addf("kv", "no storages configured (want kv.<name>.driver)")
		return nil
	}
	if kv.Kind != yaml.MappingNode {
		p.Addf("kv", "want a mapping of storage names, got %s", kindName(kv))
		return nil
	}
	var out []StorageConfig
	for _, s := range mappingPairs(kv, "kv", p) {
		path := joinPath("kv", s.key)
		if strings.TrimSpace(s.key) == "" {
			p.Addf(path, "storage name must not be empty")
			continue
		}
		entry := resolve(s.value)
		if isNull(entry) || entry.Kind != yaml.MappingNode {
			what := "nothing"
			if !isNull(entry) {
				what = kindName(entry)
			}
			p.Addf(path, "want a mapping with driver and config, got %s", what)
			continue
		}
		sc := StorageConfig{Name: s.key}
		var cfgNode *yaml.Node
		driverSeen := false
		for _, f := range mappingPairs(entry, path, p) {
			switch f.key {
			case "driver":
				driverSeen = true
				sc.Driver = decodeDriver(f.value, path+".driver", reg, p)
			case "config":
				cfgNode = f.value
			case "consistency":
				sc.Consistency = decodeConsistency(f.value, path+".consistency", p)
			default:
				p.warnf(joinPath(path, f.key), "unknown field, ignored (want driver, config, consistency)")
			}
		}
		if !driverSeen {
			p.Addf(path+".driver", "missing (want %s)", strings.Join(reg.Names(), ", "))
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
		if sc.Driver.Name != "" {
			sc.Settings = decodeSettings(&sc, p)
			resolveLimits(&sc, memory, p)
		}
		out = append(out, sc)
	}
	checkSharedFiles(out, p)
	return out
}

// decodeDriver looks kv.<name>.driver up in reg; the zero Driver when it
// is missing or unknown.
func decodeDriver(n *yaml.Node, path string, reg *drivers.Registry, p *Problems) drivers.Driver {
	n = resolve(n)
	want := strings.Join(reg.Names(), ", ")
	switch {
	case isNull(n):
		p.Addf(path, "missing (want %s)", want)
		return drivers.Driver{}
	case n.Kind != yaml.ScalarNode:
		p.Addf(path, "want a driver name (%s), got %s", want, kindName(n))
		return drivers.Driver{}
	}
	d, ok := reg.Lookup(n.Value)
	if !ok {
		p.Add(path, fmt.Errorf("%w %q (want %s)", ErrUnknownDriver, n.Value, want))
	}
	return d
}

// decodeSettings decodes, defaults and validates one storage's settings.
// It returns nil when they have problems, so the storage is not opened.
func decodeSettings(sc *StorageConfig, p *Problems) any {
	cfg := sc.Driver.NewConfig()
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

// checkSharedFiles refuses two storages on one file: bbolt locks the file,
// so the second boltdb storage would wait for the first forever.
func checkSharedFiles(storages []StorageConfig, p *Problems) {
	owner := map[string]string{}
	for _, sc := range storages {
		if sc.Driver.File == nil || sc.Settings == nil {
			continue
		}
		name := sc.Driver.File(sc.Settings, "")
		file, err := filepath.Abs(name)
		if err != nil {
			file = filepath.Clean(name)
		}
		if prev, dup := owner[file]; dup {
			p.Addf(sc.ConfigPath+".file", "%q is already the file of storage %q (one %s file serves one storage)", name, prev, sc.Driver.Name)
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
	j, ok := err.(interface{ Unwrap() []error })
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
		if i := strings.IndexFunc(head, func(r rune) bool { return !isIdentRune(r) }); i >= 0 {
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

// isIdentRune reports whether r may appear in a YAML key kvnode names.
func isIdentRune(r rune) bool {
	return r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}
