package drivers

import "context"

// Store is the storage contract the RPC layer serves. Implementations must be
// safe for concurrent use, and every call must be atomic and linearizable: a
// reader never sees half of a multi-item write.
//
// Keys and items reach a Store already validated: no blank keys, timeouts
// parsed into Deadline. Missing and expired keys are omitted from results;
// result order is unspecified.
type Store interface {
	// Has returns the keys that exist.
	Has(ctx context.Context, keys []string) ([]string, error)
	// MGet returns Key and Value of the keys that exist.
	MGet(ctx context.Context, keys []string) ([]Item, error)
	// TTL returns Key and Timeout (as sent; "" when the key has no expiry)
	// of the keys that exist.
	TTL(ctx context.Context, keys []string) ([]Item, error)
	// Set stores all items or none. A deadline not after now stores the
	// item already expired, which removes any previous value.
	Set(ctx context.Context, items []Item) error
	// MExpire changes Timeout/Deadline of the existing keys among items,
	// keeping their values; missing keys are ignored.
	MExpire(ctx context.Context, items []Item) error
	// Delete removes keys; missing keys are fine.
	Delete(ctx context.Context, keys []string) error
	// Clear removes every key.
	Clear(ctx context.Context) error
	// Close releases the storage. Calls after Close return ErrClosed.
	Close() error
}
