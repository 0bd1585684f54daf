package client_test

import (
	"testing"

	"github.com/kvnode/kvnode/rpc/rpctest"
)

// startServer serves a real memory storage named "default" on a free
// loopback port until the test ends, and returns its address.
func startServer(t testing.TB) string {
	t.Helper()
	return startServerOn(t, "tcp://127.0.0.1:0")
}

// startServerOn is startServer on a given listen DSN.
func startServerOn(t testing.TB, listen string) string {
	t.Helper()
	return rpctest.ServeMemory(t, listen)
}
