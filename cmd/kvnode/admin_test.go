package main

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/config"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/rpc"
)

// testDrivers are clustertest's default storages.
var testDrivers = map[string]drivers.Driver{"mem": memory.Driver(), "bolt": boltdb.Driver()}

// clusterRPC serves the kv and kvnode services of every node of c on
// loopback ports, wired as serve wires them, and returns their addresses.
// Everything stops before the cluster does.
func clusterRPC(t *testing.T, c *clustertest.Cluster) []string {
	t.Helper()
	return clusterRPCWith(t, c, config.RPCConfig{})
}

// clusterRPCWith is clusterRPC with the rpc section rc (Listen is set).
func clusterRPCWith(t *testing.T, c *clustertest.Cluster, rc config.RPCConfig) []string {
	t.Helper()
	rc.Listen = "tcp://127.0.0.1:0"
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		var stores []namedStore
		for name := range n.Engines {
			st, err := n.Node.Store(name, cluster.ReadLocal)
			if err != nil {
				t.Fatal(err)
			}
			stores = append(stores, namedStore{name: name, driver: testDrivers[name], store: st})
		}
		admin := newNodeAdmin(stores, &replicatedSet{node: n.Node, engines: n.Engines}, slog.New(slog.DiscardHandler))
		cfg := &config.Config{RPC: rc}
		p := &config.Problems{}
		srv := newRPCServer(cfg, stores, storageEnv{}, rpcHooks{admin: admin}, slog.New(slog.DiscardHandler), p)
		if err := p.Err(); err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve() }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			if err := <-served; err != nil && !errors.Is(err, rpc.ErrServerClosed) {
				t.Errorf("serve: %v", err)
			}
			admin.close()
		})
		addrs[i] = "tcp://" + srv.Addr().String()
		n.Node.SetRPCAddr(addrs[i]) // gossip advertises it; a no-op without
	}
	return addrs
}

// waitReady polls kvnode.Health on addr until the node is ready.
func waitReady(t *testing.T, c *clustertest.Cluster, addr string) {
	t.Helper()
	c.Poll("ready "+addr, func() string {
		code, _, errs := runVerb(t, "health", "--rpc", addr, "--ready")
		if code != 0 {
			return errs
		}
		return ""
	})
}

var _ rpc.Admin = (*nodeAdmin)(nil)

// verbTestServerAdmin is verbTestServer with the kvnode service wired as
// serve wires it for a standalone node.
func verbTestServerAdmin(t *testing.T) string {
	t.Helper()
	st := drivers.NewStandalone(memory.New(), drivers.StandaloneOptions{Driver: "memory"})
	t.Cleanup(func() { _ = st.Close() })
	stores := []namedStore{{name: "default", driver: memory.Driver(), store: st}}
	admin := newNodeAdmin(stores, nil, slog.New(slog.DiscardHandler))
	p := &config.Problems{}
	srv := newRPCServer(&config.Config{RPC: config.RPCConfig{Listen: "tcp://127.0.0.1:0"}}, stores, storageEnv{}, rpcHooks{admin: admin},
		slog.New(slog.DiscardHandler), p)
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-served; err != nil && !errors.Is(err, rpc.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return "tcp://" + srv.Addr().String()
}
