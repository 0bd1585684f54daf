// Package rpctest serves kvnode's RPC API in-process for tests of the
// packages built on it (client, CLI): a real server on a real socket over a
// real memory engine, stopped when the test ends.
package rpctest

import (
	"context"
	"testing"
	"time"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/rpc"
)

// Serve listens on cfg.Listen (tcp://127.0.0.1:0 when empty), serves
// storages until the test ends, then shuts down and fails the test if the
// shutdown was not clean.
func Serve(t testing.TB, cfg rpc.Config, storages []rpc.Storage) *rpc.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "tcp://127.0.0.1:0"
	}
	s, err := rpc.New(cfg, storages, nil, nil)
	if err != nil {
		t.Fatalf("rpc.New: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// ServeMemory serves one memory storage named "default" on listen
// (tcp://127.0.0.1:0 when empty) and returns the address to dial, as
// network://address.
func ServeMemory(t testing.TB, listen string) string {
	t.Helper()
	st := drivers.NewStandalone(memory.New(), drivers.StandaloneOptions{Driver: "memory"})
	t.Cleanup(func() { _ = st.Close() })
	s := Serve(t, rpc.Config{Listen: listen}, []rpc.Storage{{Name: "default", Driver: memory.Driver(), Store: st}})
	return s.Addr().Network() + "://" + s.Addr().String()
}
