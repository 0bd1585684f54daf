package client

import "time"

// Item is one key to write, with its value and expiry.
type Item struct {
	Key   string
	Value []byte
	// Timeout is the expiry as an RFC 3339 time, sent verbatim; "" means no
	// expiry. kv.TTL echoes it back exactly as sent. Use WithTTL or
	// WithExpiry rather than formatting it by hand.
	Timeout string
}

// WithTTL returns a copy of the item expiring ttl from now (by this
// machine's clock). A ttl of zero or less makes the item expire at once:
// kvnode then removes the key, as PSR-16 asks.
func (i Item) WithTTL(ttl time.Duration) Item {
	return i.WithExpiry(time.Now().Add(ttl))
}

// WithExpiry returns a copy of the item expiring at t. Sub-second precision
// is kept (RoadRunner truncates it; kvnode honours it).
func (i Item) WithExpiry(t time.Time) Item {
	i.Timeout = FormatTimeout(t)
	return i
}

// FormatTimeout renders t the way the server parses timeouts: RFC 3339 in
// UTC, with the fraction of a second when there is one.
func FormatTimeout(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}
