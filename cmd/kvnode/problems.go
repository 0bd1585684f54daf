package main

import (
	"errors"
	"fmt"
	"strings"
)

// problems collects every error and warning found while loading, so that
// start-up fails once with all of them.
type problems struct {
	errs     []error
	warnings []string
	// depth counts nested decodes: an alias may point at a node that
	// contains it (a: &a {b: *a}), and following it must not recurse
	// forever.
	depth int
}

// maxDepth is far beyond any real configuration's nesting.
const maxDepth = 64

// enter records one level of nesting; it reports false (and a problem) when
// the input nests too deep to be anything but an alias cycle.
func (p *problems) enter(path string) bool {
	p.depth++
	if p.depth > maxDepth {
		p.addf(path, "nested too deep (an alias that contains itself?)")
		return false
	}
	return true
}

func (p *problems) leave() { p.depth-- }

func (p *problems) add(path string, err error) {
	p.errs = append(p.errs, &FieldError{Path: path, Err: err})
}

func (p *problems) addf(path, format string, args ...any) {
	p.add(path, fmt.Errorf(format, args...))
}

func (p *problems) warnf(path, format string, args ...any) {
	p.warnings = append(p.warnings, path+": "+fmt.Sprintf(format, args...))
}

// has reports whether a problem was recorded at path or below it.
func (p *problems) has(path string) bool {
	for _, e := range p.errs {
		var fe *FieldError
		if errors.As(e, &fe) && (fe.Path == path || strings.HasPrefix(fe.Path, path+".")) {
			return true
		}
	}
	return false
}

// err returns nil or a *ConfigError listing every problem.
func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return &ConfigError{Problems: p.errs}
}
