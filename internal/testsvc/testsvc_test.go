package testsvc

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestRedis_AnswersWithItsPID(t *testing.T) {
	t.Setenv("KVNODE_TEST_REDIS_ADDR", "")
	addr := Redis(t)
	pid, err := redisPID(t.Context(), addr)
	if err != nil || pid <= 0 {
		t.Fatalf("redisPID(%s) = %d, %v; want a positive pid", addr, pid, err)
	}
}

func TestMemcached_AnswersWithItsPID(t *testing.T) {
	t.Setenv("KVNODE_TEST_MEMCACHED_ADDR", "")
	addr := Memcached(t)
	pid, err := memcachedPID(t.Context(), addr)
	if err != nil || pid <= 0 {
		t.Fatalf("memcachedPID(%s) = %d, %v; want a positive pid", addr, pid, err)
	}
}

// TestCleanup_KillsServer proves the process started for a test is gone
// once that test's cleanups ran, so test runs leave no servers behind.
func TestCleanup_KillsServer(t *testing.T) {
	t.Setenv("KVNODE_TEST_MEMCACHED_ADDR", "")
	var addr string
	t.Run("inner", func(t *testing.T) { addr = Memcached(t) })
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		_ = conn.Close()
		t.Fatalf("dial %s after cleanup succeeded; the server is still running", addr)
	}
}

func TestEnvAddr_IsReturnedAsIs(t *testing.T) {
	t.Setenv("KVNODE_TEST_REDIS_ADDR", "127.0.0.1:1")
	if got := Redis(t); got != "127.0.0.1:1" {
		t.Fatalf("Redis() = %q, want the address from the environment", got)
	}
}
