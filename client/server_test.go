package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/rpc"
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
	st := drivers.NewLocal(memory.New(), drivers.LocalOptions{Driver: "memory"})
	t.Cleanup(func() { _ = st.Close() })
	s, err := rpc.New(rpc.Config{Listen: listen},
		[]rpc.Storage{{Name: "default", Driver: "memory", Store: st}}, nil, nil)
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
	return s.Addr().Network() + "://" + s.Addr().String()
}
