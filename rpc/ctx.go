package rpc

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlineCtx is the context of one Store call: it has a deadline like
// context.WithTimeout, but arms no timer until someone asks for Done.
//
// context.WithTimeout costs a timer start and stop plus three allocations
// per call, about a quarter of the server's CPU per in-memory request. An
// in-memory Store only checks Err, which deadlineCtx answers from the clock;
// a Store that selects on Done (network drivers) gets a real timer-backed
// context, created on first use.
type deadlineCtx struct {
	parent   context.Context
	deadline time.Time

	once   sync.Once
	real   atomic.Pointer[context.Context]
	cancel context.CancelFunc
}

var _ context.Context = (*deadlineCtx)(nil)

func withDeadline(parent context.Context, d time.Time) *deadlineCtx {
	if pd, ok := parent.Deadline(); ok && pd.Before(d) {
		d = pd
	}
	return &deadlineCtx{parent: parent, deadline: d}
}

// Deadline implements context.Context.
func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// Done implements context.Context. The first call starts the timer.
func (c *deadlineCtx) Done() <-chan struct{} {
	c.once.Do(func() {
		ctx, cancel := context.WithDeadline(c.parent, c.deadline)
		c.cancel = cancel
		c.real.Store(&ctx)
	})
	return (*c.real.Load()).Done()
}

// Err implements context.Context.
func (c *deadlineCtx) Err() error {
	if r := c.real.Load(); r != nil {
		return (*r).Err() // context errors are returned as is
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value implements context.Context. Once the timer-backed context exists it
// answers, so that contexts derived from this one recognise it as a
// cancelable parent and do not need a watcher goroutine each.
func (c *deadlineCtx) Value(key any) any {
	if r := c.real.Load(); r != nil {
		return (*r).Value(key)
	}
	return c.parent.Value(key)
}

// release stops the timer, if one was started.
func (c *deadlineCtx) release() {
	// cancel is set before real is published, so it is visible here.
	if c.real.Load() != nil {
		c.cancel()
	}
}
