package drivers

import (
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

// ParseTimeout parses an RFC 3339 timeout into a deadline in Unix
// nanoseconds. "" means no expiry (0). A valid time at or before the Unix
// epoch maps to 1 so that it stays distinguishable from "no expiry" and is
// already expired for any realistic clock.
func ParseTimeout(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, err //nolint:wrapcheck // the RPC layer renders time's own text, as RoadRunner does
	}
	d := t.UnixNano()
	if d <= 0 {
		d = 1
	}
	return d, nil
}

// Expired reports whether an item with deadline d is expired at now.
// A deadline equal to now is expired: "never served after its deadline".
func Expired(d, now int64) bool { return d != 0 && d <= now }
