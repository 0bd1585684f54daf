// Package testsvc starts real redis-server and memcached processes for
// tests, each on a free loopback port, and stops them when the test ends.
//
// The binaries must be installed (CI installs them); a missing binary fails
// the test instead of skipping it, so a green run always means the drivers
// were exercised against a real server. Setting KVNODE_TEST_REDIS_ADDR or
// KVNODE_TEST_MEMCACHED_ADDR makes the helpers return that address instead
// of starting a process; tests flush such a server, so point them only at a
// throwaway instance.
package testsvc
