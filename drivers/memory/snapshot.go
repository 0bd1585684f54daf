package memory

import (
	"errors"
	"io"

	"github.com/kvnode/kvnode/drivers"
)

// Snapshot is not implemented yet.
func (e *Engine) Snapshot() (drivers.Snapshot, error) { return nil, errors.ErrUnsupported }

// Restore is not implemented yet.
func (e *Engine) Restore(io.Reader) error { return errors.ErrUnsupported }

// Hash is not implemented yet.
func (e *Engine) Hash() ([]byte, error) { return nil, errors.ErrUnsupported }
