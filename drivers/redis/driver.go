package redis

import "github.com/kvnode/kvnode/drivers"

// Driver describes the redis driver to kvnode: a pass-through storage a
// cluster does not replicate.
func Driver() drivers.Driver {
	return drivers.Driver{
		Name:      "redis",
		NewConfig: func() any { return &Config{} },
		Open:      open,
		ErrorOp:   "redis_driver_",
		Unbounded: "redis bounds itself: set maxmemory and maxmemory-policy on the redis server",
	}
}

// open checks the settings and builds the client; it does not connect.
func open(settings any, env drivers.Env) (drivers.Store, error) {
	s, err := New(*settings.(*Config), env.TracerProvider, env.Logger)
	if err != nil {
		return nil, err
	}
	return s, nil
}
