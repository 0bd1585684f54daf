package redis

import "errors"

var (
	// ErrConfig is wrapped by every configuration error Validate returns.
	ErrConfig = errors.New("redis config")
)
