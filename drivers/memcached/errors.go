package memcached

import (
	"errors"

	"github.com/kvnode/kvnode/drivers"
)

var (
	// ErrTTLNotSupported is returned by TTL: memcached cannot report expiry
	// times. Its text is exactly RoadRunner's, so the RPC layer can render
	// "memcached_plugin_ttl: " + its text; it matches drivers.ErrNotSupported.
	ErrTTLNotSupported error = &notSupportedError{
		msg: "not valid request for memcached, see https://github.com/memcached/memcached/issues/239",
	}
	// ErrMalformedKey is returned for a key memcached refuses: longer than
	// 250 bytes, or containing spaces or control characters.
	ErrMalformedKey = errors.New("memcached: key must be at most 250 bytes without spaces or control characters")
	// ErrValueTooLarge is returned when the server refuses a value larger
	// than its item size limit (memcached -I, 1 MiB by default).
	ErrValueTooLarge = errors.New("memcached: value larger than the server's item size limit")
	// ErrConfig is wrapped by every configuration error Validate returns.
	ErrConfig = errors.New("memcached config")
)

// notSupportedError carries a fixed text while matching
// drivers.ErrNotSupported under errors.Is.
type notSupportedError struct{ msg string }

func (e *notSupportedError) Error() string { return e.msg }
func (e *notSupportedError) Unwrap() error { return drivers.ErrNotSupported }
