package cluster

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/fsm"
)

// A node bound to every interface without TLS does not start, unless
// cluster.insecure says the operator accepts it; then it starts and says so
// in a warning.
func TestExposure_InsecureIsRefusedUnlessAccepted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }() // Open may have closed it already
	l, _ := NewLogBook()
	cfg := Config{NodeID: "n", DataDir: t.TempDir(), Raft: RaftConfig{Bind: "0.0.0.0:0"}}
	_, err = Open(cfg, fsm.New(map[string]drivers.Engine{"mem": memory.New()}, l), Options{Listener: ln, Logger: l})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "cluster.raft.bind") {
		t.Fatalf("open without TLS on 0.0.0.0: %v", err)
	}

	l, logs := NewLogBook()
	openSolo(t, func(c *Config) { c.Raft.Bind, c.Insecure = "0.0.0.0:0", true }, l)
	if logs.Find("level=WARN", "INSECURE (cluster.insecure is set): cluster.raft.bind", "without TLS", "kvnode tls ca") == "" {
		t.Fatal("no warning about the insecure cluster port")
	}
}
