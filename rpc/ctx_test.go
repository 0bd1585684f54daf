package rpc

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

func TestDeadlineCtx(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.WithValue(t.Context(), ctxKey{}, "v"))
	defer cancelParent()

	// Err alone: answered from the clock, no timer.
	c := withDeadline(parent, time.Now().Add(time.Hour))
	if d, ok := c.Deadline(); !ok || time.Until(d) < 59*time.Minute {
		t.Fatalf("Deadline = %v, %v", d, ok)
	}
	if c.Err() != nil || c.Value(ctxKey{}) != "v" || c.real.Load() != nil {
		t.Fatalf("fresh ctx: err %v value %v timer %v", c.Err(), c.Value(ctxKey{}), c.real.Load())
	}
	past := withDeadline(parent, time.Now().Add(-time.Millisecond))
	if !errors.Is(past.Err(), context.DeadlineExceeded) {
		t.Fatalf("past deadline: Err = %v", past.Err())
	}

	// Done: a real timer fires at the deadline.
	short := withDeadline(parent, time.Now().Add(20*time.Millisecond))
	defer short.release()
	select {
	case <-short.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done never closed")
	}
	if !errors.Is(short.Err(), context.DeadlineExceeded) || short.Value(ctxKey{}) != "v" {
		t.Fatalf("after Done: Err %v value %v", short.Err(), short.Value(ctxKey{}))
	}

	// A child context follows it, and the parent's cancellation reaches both.
	c2 := withDeadline(parent, time.Now().Add(time.Hour))
	defer c2.release()
	child, cancelChild := context.WithCancel(c2)
	defer cancelChild()
	// A parent deadline earlier than the requested one wins.
	early, cancelEarly := context.WithTimeout(parent, time.Minute)
	defer cancelEarly()
	if d, _ := withDeadline(early, time.Now().Add(time.Hour)).Deadline(); time.Until(d) > 2*time.Minute {
		t.Fatalf("parent deadline ignored: %v", d)
	}
	cancelParent()
	select {
	case <-child.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("parent cancellation did not reach the child")
	}
	if !errors.Is(c.Err(), context.Canceled) || !errors.Is(c2.Err(), context.Canceled) {
		t.Fatalf("after parent cancel: %v, %v", c.Err(), c2.Err())
	}
}
