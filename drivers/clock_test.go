package drivers

import (
	"testing"
	"time"
)

// The floor keeps a leader's stamps from going back below the replicated
// clock when its own clock is behind.
func TestStamper_NeverBelowTheFloor(t *testing.T) {
	wall := time.Unix(100, 0)
	floor := int64(0)
	s := NewStamper(func() time.Time { return wall }, func() int64 { return floor })
	if got := s.Now(); got != wall.UnixNano() {
		t.Fatalf("Now = %d, want the wall clock %d", got, wall.UnixNano())
	}
	floor = wall.UnixNano() + int64(time.Second)
	ops := []Op{{Kind: OpSet}, {Kind: OpDelete}}
	if got := s.Stamp(ops); got != floor || ops[0].Now != floor || ops[1].Now != floor {
		t.Fatalf("Stamp = %d, ops %d %d; want all %d", got, ops[0].Now, ops[1].Now, floor)
	}
}
