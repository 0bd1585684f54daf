package config

import (
	"errors"
	"fmt"
	"strings"
)

// Problems collects every error and warning found while loading, and those
// the program finds while opening what the configuration describes, so
// that start-up fails once with all of them.
type Problems struct {
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
func (p *Problems) enter(path string) bool {
	p.depth++
	if p.depth > maxDepth {
		p.Addf(path, "nested too deep (an alias that contains itself?)")
		return false
	}
	return true
}

func (p *Problems) leave() { p.depth-- }

// Add records err under the dotted path of the field it concerns.
func (p *Problems) Add(path string, err error) {
	p.errs = append(p.errs, &FieldError{Path: path, Err: err})
}

// Addf records a formatted problem under path.
func (p *Problems) Addf(path, format string, args ...any) {
	p.Add(path, fmt.Errorf(format, args...))
}

func (p *Problems) warnf(path, format string, args ...any) {
	p.warnings = append(p.warnings, path+": "+fmt.Sprintf(format, args...))
}

// Has reports whether a problem was recorded at path or below it.
func (p *Problems) Has(path string) bool {
	for _, e := range p.errs {
		var fe *FieldError
		if errors.As(e, &fe) && (fe.Path == path || strings.HasPrefix(fe.Path, path+".")) {
			return true
		}
	}
	return false
}

// AddStorage records err from opening storage sc under the storage's
// settings, or the field whose yaml name starts its text ("file: ...").
func (p *Problems) AddStorage(sc *StorageConfig, err error) {
	p.errs = append(p.errs, attributeField(sc.ConfigPath, sc.Settings, err))
}

// Err returns nil or an *Error listing every problem.
func (p *Problems) Err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return &Error{Problems: p.errs}
}
