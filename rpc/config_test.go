package rpc

import (
	"testing"
	"time"
)

// The defaults README and docs/security.md state.
func TestConfig_HardeningDefaults(t *testing.T) {
	var c Config
	c.setDefaults()
	wantConns := 4096
	if fds := openFileLimit(); fds > 0 && fds/2 < wantConns {
		wantConns = fds / 2
	}
	if c.MaxItems != 100_000 || c.MaxConnections != wantConns || c.MaxReplyBacklog != 8<<20 ||
		c.WriteTimeout != 30*time.Second || c.FrameTimeout != 30*time.Second || c.MaxFrameSize != 32<<20 ||
		c.IdleTimeout != 0 || c.MaxInFlight != 256 {
		t.Fatalf("defaults %+v", c)
	}
	c = Config{MaxConnections: 10, MaxItems: 5}
	c.setDefaults()
	if c.MaxConnections != 10 || c.MaxItems != 5 {
		t.Fatalf("explicit values lost: %+v", c)
	}
}
