package memcached

import "github.com/kvnode/kvnode/drivers"

// ttlRefusal is what RoadRunner's memcached driver answers to every TTL:
// memcached has no command that reads an expiry.
const ttlRefusal = "not valid request for memcached, see https://github.com/memcached/memcached/issues/239"

// Driver describes the memcached driver to kvnode: a pass-through storage
// a cluster does not replicate, which refuses TTL as RoadRunner's does.
func Driver() drivers.Driver {
	return drivers.Driver{
		Name:       "memcached",
		NewConfig:  func() any { return &Config{} },
		Open:       open,
		ErrorOp:    "memcached_plugin_",
		TTLRefusal: ttlRefusal,
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
