package memory

import (
	"context"

	"github.com/kvnode/kvnode/drivers"
)

// Driver describes the memory driver to kvnode: replicable, boundable,
// and fast enough standalone to be served on the connection's reader.
func Driver() drivers.Driver {
	return drivers.Driver{
		Name:      "memory",
		NewConfig: func() any { return &Config{} },
		Open:      open,
		OpenEngine: func(any, drivers.Env) (drivers.Engine, error) {
			return New(), nil
		},
		ErrorOp: "in_memory_plugin_",
		Inline:  true,
	}
}

// open serves a standalone memory storage through drivers.Standalone, bounded
// when env carries limits.
func open(_ any, env drivers.Env) (drivers.Store, error) {
	l := drivers.NewStandalone(New(), env.StandaloneOptions("memory"))
	if env.Limits.Bounded() {
		if err := l.SetLimits(context.Background(), env.Limits); err != nil {
			_ = l.Close()
			return nil, err //nolint:wrapcheck // reported under the storage's path
		}
	}
	return l, nil
}
