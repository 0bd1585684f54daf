package redis

import (
	"context"
	"fmt"
	"log/slog"
)

// ClientLogger routes go-redis' own log lines (dial failures, pool
// warnings) to slog. go-redis has only a process-wide logger, so New does
// not install it; main does, once:
//
//	goredis.SetLogger(redis.ClientLogger{Logger: logger})
type ClientLogger struct {
	Logger *slog.Logger
}

// Printf logs one go-redis message at warning level: go-redis logs only
// when something went wrong.
func (l ClientLogger) Printf(ctx context.Context, format string, v ...any) {
	if l.Logger == nil {
		return
	}
	l.Logger.WarnContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
