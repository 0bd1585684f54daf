package drivers

import (
	"sync/atomic"
	"time"
)

// Stamper is where every write gets its time: the Now an Op carries, which
// every engine judges expiry and eviction by when it applies the Op (the
// Engine contract takes now as an argument and never reads a clock). A
// single node stamps its group commits with it; a cluster's leader stamps
// its proposals with it, floored at the replicated clock so the clock in
// the log never goes back when leadership moves to a node whose clock is
// behind. Reads judge expiry by a time their committer chooses
// (Committer.ReadTime).
type Stamper struct {
	wall  func() time.Time
	floor func() int64
}

// NewStamper stamps with wall (time.Now when nil), never below floor()
// when floor is not nil.
func NewStamper(wall func() time.Time, floor func() int64) Stamper {
	if wall == nil {
		wall = time.Now
	}
	return Stamper{wall: wall, floor: floor}
}

// Now is the time the next write is stamped with, in Unix nanoseconds.
func (s Stamper) Now() int64 {
	now := s.wall().UnixNano()
	if s.floor != nil {
		now = max(now, s.floor())
	}
	return now
}

// Stamp sets Now on every op to one stamp and returns it: writes committed
// together happen at one instant.
func (s Stamper) Stamp(ops []Op) int64 {
	now := s.Now()
	for i := range ops {
		ops[i].Now = now
	}
	return now
}

// ReadClock is the time one node's reads judge expiry by: its Stamper's
// time, never below a time it returned before. A clock that steps back
// (an NTP step, a resumed VM, an operator, a skew fault) would otherwise
// let a read show a key that an earlier read on the same node found
// expired; with it, expiry seen on a node stays seen there. The price is
// that after a backward step keys hide early by up to the size of the step
// until the clock has caught up, which the skew bound already allows.
type ReadClock struct {
	s    Stamper
	last atomic.Int64
}

// NewReadClock returns a ReadClock over s.
func NewReadClock(s Stamper) *ReadClock { return &ReadClock{s: s} }

// Now returns s.Now(), or the latest time returned before when that is
// later.
func (c *ReadClock) Now() int64 {
	now := c.s.Now()
	for {
		last := c.last.Load()
		if now <= last {
			return last
		}
		if c.last.CompareAndSwap(last, now) {
			return now
		}
	}
}
