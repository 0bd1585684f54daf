package fsm

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
)

func TestFSM_WaitApplied(t *testing.T) {
	f := newPair(t)
	clear := encode(t, "mem", drivers.Op{Kind: drivers.OpClear})

	done := make(chan error, 1)
	go func() { done <- f.WaitApplied(t.Context(), 3) }()
	f.ApplyBatch([]*raft.Log{cmd(1, clear), cmd(2, clear)})
	select {
	case err := <-done:
		t.Fatalf("WaitApplied(3) returned at index 2: %v", err)
	default:
	}
	f.Apply(cmd(3, clear))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitApplied(3) did not wake at index 3")
	}

	if err := f.WaitApplied(t.Context(), 2); err != nil {
		t.Fatalf("already applied: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- f.WaitApplied(ctx, 100) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitApplied ignored its context")
	}
}

func TestFSM_WaitAppliedWakesOnRestore(t *testing.T) {
	src := newPair(t)
	results(t, src, script(t))
	b := persist(t, src)

	dst := newPair(t)
	const waiters = 8
	done := make(chan error, waiters)
	for range waiters {
		go func() { done <- dst.WaitApplied(t.Context(), 13) }()
	}
	if err := restore(dst, b); err != nil {
		t.Fatal(err)
	}
	for range waiters {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a waiter was not woken by Restore")
		}
	}
}
