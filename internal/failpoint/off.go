//go:build !failpoint

package failpoint

import (
	"context"
	"log/slog"
	"time"
)

// Enabled reports whether this build has failpoints.
const Enabled = false

// Sleep does nothing in this build.
func Sleep(string) {}

// Now is time.Now in this build.
func Now() time.Time { return time.Now() }

// Serve does nothing in this build.
func Serve(context.Context, *slog.Logger) error { return nil }
