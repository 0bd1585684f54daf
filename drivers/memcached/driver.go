package memcached

import "github.com/kvnode/kvnode/drivers"

// Driver describes the memcached driver to kvnode: a pass-through storage
// a cluster does not replicate, which refuses TTL as RoadRunner's does.
func Driver() drivers.Driver {
	return drivers.Driver{
		Name:       "memcached",
		NewConfig:  func() any { return &Config{} },
		Open:       open,
		ErrorOp:    "memcached_plugin_",
		TTLRefusal: ErrTTLNotSupported.Error(), // RoadRunner's words
		Unbounded:  "memcached bounds itself: start it with -m (megabytes) and it evicts by lru",
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
