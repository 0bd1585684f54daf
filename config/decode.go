package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// yaml.v3's TypeError says "cannot unmarshal !!str `abc` into int" without
// the field's path, and a start-up error that does not say which storage
// and which field is wrong is useless in a file with four storages. So
// configuration sections are decoded here, field by field over the yaml
// struct tags, and every problem is recorded with its dotted path.

// joinPath appends a key to a dotted path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// resolve follows aliases and unwraps documents so callers see the node
// that carries the value. A nil result means "no value".
func resolve(n *yaml.Node) *yaml.Node {
	for depth := 0; n != nil && depth < 64; depth++ {
		switch n.Kind {
		case yaml.AliasNode:
			n = n.Alias
		case yaml.DocumentNode:
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		default:
			return n
		}
	}
	return nil
}

// isNull reports whether n holds no value (absent, "~", "null" or empty),
// which leaves the target at its default.
func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// kindName names a node's shape in messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// pair is one key and value of a mapping.
type pair struct {
	key   string
	value *yaml.Node
}

// mappingPairs returns the entries of a mapping node in order, with merge
// keys (<<: *anchor) expanded beneath the explicit ones and duplicate keys
// reported. The caller must pass a resolved mapping node.
func mappingPairs(n *yaml.Node, path string, p *Problems) []pair {
	var merged, own []pair
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			p.Addf(path, "mapping keys must be scalars")
			continue
		}
		if k.ShortTag() == "!!merge" {
			merged = append(merged, mergeSources(v, path, p)...)
			continue
		}
		if seen[k.Value] {
			p.Addf(joinPath(path, k.Value), "duplicate key")
			continue
		}
		seen[k.Value] = true
		own = append(own, pair{key: k.Value, value: v})
	}
	out := own
	for _, m := range merged {
		if !seen[m.key] {
			seen[m.key] = true
			out = append(out, m)
		}
	}
	return out
}

// mergeSources expands the value of a merge key: one mapping or a list of
// them, earlier ones winning.
func mergeSources(v *yaml.Node, path string, p *Problems) []pair {
	defer p.leave()
	if !p.enter(path) {
		return nil
	}
	v = resolve(v)
	switch {
	case v == nil:
		return nil
	case v.Kind == yaml.MappingNode:
		return mappingPairs(v, path, p)
	case v.Kind == yaml.SequenceNode:
		var out []pair
		for _, m := range v.Content {
			if m = resolve(m); m != nil && m.Kind == yaml.MappingNode {
				out = append(out, mappingPairs(m, path, p)...)
			} else {
				p.Addf(path, "merge key (<<) needs mappings")
			}
		}
		return out
	default:
		p.Addf(path, "merge key (<<) needs a mapping, got %s", kindName(v))
		return nil
	}
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	nodeType            = reflect.TypeFor[yaml.Node]()
	yamlUnmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeValue decodes node into out (an addressable value), recording every
// bad field in p under its path. Unknown mapping keys are warnings: a typo
// should not pass silently, but RoadRunner configs carry keys that kvnode
// has no use for.
func decodeValue(node *yaml.Node, path string, out reflect.Value, p *Problems) {
	defer p.leave()
	if !p.enter(path) {
		return
	}
	n := resolve(node)
	if isNull(n) {
		return
	}
	t := out.Type()
	if out.CanAddr() {
		ptr := out.Addr()
		switch {
		case ptr.Type().Implements(yamlUnmarshalerType):
			if err := n.Decode(ptr.Interface()); err != nil {
				p.Add(path, trimField(path, cleanYAMLError(err)))
			}
			return
		case ptr.Type().Implements(textUnmarshalerType) && n.Kind == yaml.ScalarNode:
			if err := ptr.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
				p.Addf(path, "cannot decode %q: %v", n.Value, err)
			}
			return
		}
	}
	switch t {
	case durationType:
		decodeDuration(n, path, out, p)
		return
	case nodeType:
		out.Set(reflect.ValueOf(*n))
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		v := reflect.New(t.Elem())
		decodeValue(n, path, v.Elem(), p)
		out.Set(v)
	case reflect.Struct:
		decodeStruct(n, path, out, p)
	case reflect.Map:
		decodeMap(n, path, out, p)
	case reflect.Slice:
		decodeSlice(n, path, out, p)
	case reflect.Interface:
		var v any
		if err := n.Decode(&v); err != nil {
			p.Add(path, cleanYAMLError(err))
			return
		}
		if v != nil {
			out.Set(reflect.ValueOf(v))
		}
	default:
		decodeScalar(n, path, out, p)
	}
}

func decodeStruct(n *yaml.Node, path string, out reflect.Value, p *Problems) {
	if n.Kind != yaml.MappingNode {
		p.Addf(path, "cannot decode %s as a mapping", kindName(n))
		return
	}
	fields := map[string]reflect.Value{}
	collectFields(out, fields)
	for _, kv := range mappingPairs(n, path, p) {
		f, ok := fields[kv.key]
		if !ok {
			p.warnf(joinPath(path, kv.key), "unknown field, ignored")
			continue
		}
		decodeValue(kv.value, joinPath(path, kv.key), f, p)
	}
}

// collectFields maps the yaml names of a struct's settable fields to the
// fields, following ",inline" and falling back to the lower-cased Go name
// as yaml.v3 does.
func collectFields(v reflect.Value, into map[string]reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("yaml")
		if tag == "" {
			tag = sf.Tag.Get("mapstructure")
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") || strings.Contains(opts, "squash") {
			if fv := v.Field(i); fv.Kind() == reflect.Struct {
				collectFields(fv, into)
				continue
			}
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		into[name] = v.Field(i)
	}
}

func decodeMap(n *yaml.Node, path string, out reflect.Value, p *Problems) {
	t := out.Type()
	if t.Key().Kind() != reflect.String {
		if err := n.Decode(out.Addr().Interface()); err != nil {
			p.Add(path, cleanYAMLError(err))
		}
		return
	}
	if n.Kind != yaml.MappingNode {
		p.Addf(path, "cannot decode %s as a mapping", kindName(n))
		return
	}
	m := reflect.MakeMap(t)
	for _, kv := range mappingPairs(n, path, p) {
		v := reflect.New(t.Elem()).Elem()
		decodeValue(kv.value, joinPath(path, kv.key), v, p)
		m.SetMapIndex(reflect.ValueOf(kv.key).Convert(t.Key()), v)
	}
	out.Set(m)
}

// decodeSlice accepts a list, or a single scalar as a one-element list
// (addr: 127.0.0.1:11211 where a list of addresses is expected).
func decodeSlice(n *yaml.Node, path string, out reflect.Value, p *Problems) {
	t := out.Type()
	items := n.Content
	switch {
	case n.Kind == yaml.SequenceNode:
	case n.Kind == yaml.ScalarNode && t.Elem().Kind() != reflect.Uint8:
		items = []*yaml.Node{n}
	case n.Kind == yaml.ScalarNode:
		out.SetBytes([]byte(n.Value))
		return
	default:
		p.Addf(path, "cannot decode %s as a list", kindName(n))
		return
	}
	s := reflect.MakeSlice(t, len(items), len(items))
	for i, item := range items {
		decodeValue(item, fmt.Sprintf("%s[%d]", path, i), s.Index(i), p)
	}
	out.Set(s)
}

func decodeDuration(n *yaml.Node, path string, out reflect.Value, p *Problems) {
	if n.Kind != yaml.ScalarNode {
		p.Addf(path, "cannot decode %s as duration", kindName(n))
		return
	}
	d, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		p.Addf(path, "cannot decode %q as duration (want e.g. \"500ms\", \"10s\", \"1m\")", n.Value)
		return
	}
	out.SetInt(int64(d))
}

func decodeScalar(n *yaml.Node, path string, out reflect.Value, p *Problems) {
	if n.Kind != yaml.ScalarNode {
		p.Addf(path, "cannot decode %s as %s", kindName(n), typeWord(out.Kind()))
		return
	}
	switch out.Kind() {
	case reflect.String:
		out.SetString(n.Value)
		return
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var v int64
		if n.Decode(&v) != nil {
			break
		}
		if out.OverflowInt(v) {
			p.Addf(path, "%s is out of range for %s", n.Value, out.Type())
			return
		}
		out.SetInt(v)
		return
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		var v uint64
		if n.Decode(&v) != nil {
			break
		}
		if out.OverflowUint(v) {
			p.Addf(path, "%s is out of range for %s", n.Value, out.Type())
			return
		}
		out.SetUint(v)
		return
	case reflect.Float32, reflect.Float64:
		var v float64
		if n.Decode(&v) != nil {
			break
		}
		out.SetFloat(v)
		return
	case reflect.Bool:
		var v bool
		if n.Decode(&v) != nil {
			break
		}
		out.SetBool(v)
		return
	default:
		p.Addf(path, "unsupported field type %s", out.Type())
		return
	}
	p.Addf(path, "cannot decode %q as %s", n.Value, typeWord(out.Kind()))
}

// typeWord names a Go kind the way a YAML author thinks of it.
func typeWord(k reflect.Kind) string {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "int"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "non-negative int"
	case reflect.Float32, reflect.Float64:
		return "number"
	default:
		return k.String()
	}
}

// cleanYAMLError strips yaml.v3's "yaml: unmarshal errors:\n  line 3: "
// framing from an error about a single value, also when a field's own
// UnmarshalYAML wrapped it in context.
func cleanYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = m
		if _, rest, ok := strings.Cut(m, ": "); ok && strings.HasPrefix(m, "line ") {
			msgs[i] = rest
		}
	}
	return &detail{msg: strings.Replace(err.Error(), te.Error(), strings.Join(msgs, "; "), 1), err: err}
}

// trimField shortens the message of a field's own UnmarshalYAML error when
// it repeats the field name the path already gives ("invalid boltdb
// config: permissions: ..." under kv.files.config.permissions).
func trimField(path string, err error) error {
	last := path[strings.LastIndexByte(path, '.')+1:]
	rest := err.Error()
	for range 3 {
		head, tail, ok := strings.Cut(rest, ": ")
		if !ok {
			break
		}
		if head == last {
			return &detail{msg: tail, err: err}
		}
		rest = tail
	}
	return err
}
