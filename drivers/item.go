package drivers

import (
	"math"
	"strings"
	"time"
)

// Item is one key with its value and expiry as it travels between the RPC
// layer, the event log and the drivers.
type Item struct {
	Key   string
	Value []byte
	// Timeout is the RFC 3339 string exactly as the client sent it ("" = no
	// expiry). kv.TTL echoes it back unchanged.
	Timeout string
	// Deadline is Timeout parsed once, in Unix nanoseconds; 0 = no expiry.
	Deadline int64
}

// BlankKey reports whether key is empty or only white space, which every
// method refuses.
func BlankKey(key string) bool { return strings.TrimSpace(key) == "" }

// MaxDeadline is the latest deadline Unix nanoseconds can hold
// (2262-04-11T23:47:16.854775807Z).
const MaxDeadline = math.MaxInt64

// ParseTimeout parses an RFC 3339 timeout into a deadline in Unix
// nanoseconds. "" means no expiry (0). A valid time at or before the Unix
// epoch maps to 1 so that it stays distinguishable from "no expiry" and is
// already expired for any realistic clock. A time after MaxDeadline is
// clamped to it: UnixNano would wrap it around (into the past, for
// 9999-12-31), and RoadRunner keeps such keys.
func ParseTimeout(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, err // the RPC layer renders time's own text, as RoadRunner does
	}
	switch {
	case t.After(time.Unix(0, MaxDeadline)):
		return MaxDeadline, nil
	case !t.After(time.Unix(0, 0)):
		return 1, nil
	}
	return t.UnixNano(), nil
}

// Expired reports whether an item with deadline d is expired at now.
// A deadline equal to now is expired: "never served after its deadline".
func Expired(d, now int64) bool { return d != 0 && d <= now }
