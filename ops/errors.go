package ops

import "errors"

// ErrConfig is returned by NewServer for an address it cannot use.
var ErrConfig = errors.New("ops: bad configuration")
