package drivers

import "time"

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
