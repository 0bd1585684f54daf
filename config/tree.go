package config

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// parseYAML parses a configuration file into its node tree. An empty file
// yields an empty mapping. yaml.v3 has panicked on hostile input before
// (CVE-2022-28948); a configuration file must never crash the process, so
// a panic from the parser becomes an error.
func parseYAML(data []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml: parser failed: %v", r)
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err //nolint:wrapcheck // yaml's message already starts with "yaml:"
	}
	root = resolve(&doc)
	if root == nil || root.Kind == 0 || isNull(root) {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("yaml: the document must be a mapping of sections, got %s", kindName(root))
	}
	return root, nil
}

// expandEnv replaces ${VAR} and ${VAR:-default} in every scalar value of the
// tree (mapping keys are left alone).
//
// RoadRunner expands the whole file text before parsing. kvnode expands each
// scalar after parsing instead: a variable whose value contains ": ", "#"
// or a newline then cannot change the structure of the file or comment out
// the rest of a line, and a password containing "$" is safe because only
// the braced forms are recognised (a bare $VAR stays literal). An unset
// variable without a default expands to "", as in RoadRunner and the shell.
// A plain (unquoted) scalar is re-typed after expansion, so
// "permissions: ${PERM:-0644}" is still a number; a quoted one stays a
// string.
func expandEnv(n *yaml.Node, lookup func(string) (string, bool)) {
	switch n.Kind {
	case yaml.ScalarNode:
		v, changed := expandString(n.Value, lookup)
		if !changed {
			return
		}
		n.Value = v
		if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = "" // re-resolve: "0644" is an int, "true" a bool
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			expandEnv(n.Content[i], lookup)
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			expandEnv(c, lookup)
		}
	}
}

// expandString expands ${VAR} and ${VAR:-default} in s. An unterminated
// "${" is kept as is.
func expandString(s string, lookup func(string) (string, bool)) (string, bool) {
	if !strings.Contains(s, "${") {
		return s, false
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			break
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			break
		}
		b.WriteString(s[:i])
		expr := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if v, ok := lookup(name); ok && (v != "" || !hasDef) {
			b.WriteString(v)
		} else if hasDef {
			b.WriteString(def)
		}
		s = s[i+end+1:]
	}
	b.WriteString(s)
	return b.String(), true
}

// applyOverride sets one "-o key.path=value" on the tree: the path is split
// on dots and walks mappings (created when missing) and lists (by index);
// the value is parsed as YAML, so "-o kv.s.config.addrs=[a,b]" gives a
// list and "-o rpc.listen=tcp://127.0.0.1:7001" a string. Overrides are
// applied after environment expansion and are taken literally.
func applyOverride(root *yaml.Node, override string) error {
	key, raw, ok := strings.Cut(override, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return fmt.Errorf("-o %q: want key.path=value", override)
	}
	segs := strings.Split(key, ".")
	for _, s := range segs {
		if s == "" {
			return fmt.Errorf("-o %q: empty key in path", override)
		}
	}
	value := overrideValue(raw)
	n := root
	for i, seg := range segs {
		last := i == len(segs)-1
		at := strings.Join(segs[:i], ".")
		switch n.Kind {
		case yaml.MappingNode:
			child := lookupKey(n, seg)
			if child == nil {
				child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: seg}, child)
			}
			if last {
				*child = *value
				return nil
			}
			if isNull(child) {
				*child = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			}
			n = resolve(child)
		case yaml.SequenceNode:
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || idx >= len(n.Content) {
				return fmt.Errorf("-o %s: %s is a list of %d, %q is not an index in it", key, at, len(n.Content), seg)
			}
			if last {
				*n.Content[idx] = *value
				return nil
			}
			n = resolve(n.Content[idx])
		default:
			return fmt.Errorf("-o %s: %s is a value, not a section", key, at)
		}
		if n == nil {
			return fmt.Errorf("-o %s: %s is empty", key, strings.Join(segs[:i+1], "."))
		}
	}
	return nil
}

// overrideValue parses the value of an override as YAML; anything that does
// not parse is taken as a plain string, and an empty value as null (the
// field's default).
func overrideValue(raw string) *yaml.Node {
	if strings.TrimSpace(raw) == "" {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	if n, err := parseAnyYAML(raw); err == nil && n != nil {
		return n
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: raw}
}

func parseAnyYAML(raw string) (n *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = nil, fmt.Errorf("yaml: parser failed: %v", r)
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(raw), &doc); err != nil {
		return nil, err //nolint:wrapcheck // only tells the caller to fall back to a string
	}
	return resolve(&doc), nil
}

// lookupKey returns the value of key in mapping n, or nil. When a key
// appears twice the first one is returned, as the decoder uses it (and
// reports the duplicate).
func lookupKey(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); k != nil && k.Kind == yaml.ScalarNode && k.Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
