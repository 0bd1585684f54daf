package config

import (
	"errors"
	"strconv"
	"strings"
)

var (
	// ErrInvalidConfig is matched by every *Error.
	ErrInvalidConfig = errors.New("invalid configuration")
	// ErrUnknownDriver is reported for a kv.<name>.driver kvnode has no driver for.
	ErrUnknownDriver = errors.New("unknown driver")
)

// Error lists every problem found in a configuration, each one
// prefixed with the dotted path of the field it concerns, so that a user
// fixes them all in one go instead of one per restart.
type Error struct {
	Problems []error
}

// Error renders the problems one per line under a count.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalidConfig.Error())
	b.WriteString(" (")
	b.WriteString(strconv.Itoa(len(e.Problems)))
	if len(e.Problems) == 1 {
		b.WriteString(" problem):")
	} else {
		b.WriteString(" problems):")
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap exposes the individual problems to errors.Is and errors.As.
func (e *Error) Unwrap() []error { return e.Problems }

// Is makes errors.Is(err, ErrInvalidConfig) hold for every Error.
func (e *Error) Is(target error) bool { return target == ErrInvalidConfig }

// FieldError is one configuration problem: the dotted path of the field
// (kv.sessions.config.permissions) and what is wrong with it.
type FieldError struct {
	Path string
	Err  error
}

// Error renders "path: problem".
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

// Unwrap returns the underlying problem.
func (e *FieldError) Unwrap() error { return e.Err }
