package cluster

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// refusalLogEvery is how often refusals from one source are logged: a
// misconfigured node retries every probe interval, and one line per
// interval per source says as much as a hundred.
const refusalLogEvery = 10 * time.Second

// logLimiter lets one log line per key through per interval and counts
// the ones it held back.
type logLimiter struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
	held  map[string]int
}

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, last: map[string]time.Time{}, held: map[string]int{}}
}

// allow reports whether key may log now, and how many lines were held back
// since it last could.
func (l *logLimiter) allow(key string) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.every {
		l.held[key]++
		return 0, false
	}
	if len(l.last) > 4096 {
		// Many distinct sources: forget them rather than grow.
		clear(l.last)
		clear(l.held)
	}
	n := l.held[key]
	l.last[key] = now
	delete(l.held, key)
	return n, true
}

// gossipLog is the io.Writer memberlist logs to. memberlist writes lines
// like "[WARN] memberlist: ..." through a *log.Logger; the level prefix
// becomes the slog level, and messages that mean "a node without our key
// tried to talk to us" are raised to warnings and rate-limited per source.
type gossipLog struct {
	l       *slog.Logger
	limiter *logLimiter
}

func newGossipLog(l *slog.Logger) *gossipLog {
	return &gossipLog{l: l.With("subsystem", "gossip"), limiter: newLogLimiter(refusalLogEvery)}
}

// refusalHints are fragments of memberlist's messages for traffic it could
// not authenticate or decrypt.
var refusalHints = []string{
	"could decrypt",
	"Decrypt packet failed",
	"remote state is encrypted and encryption is not configured",
	"encryption is configured but remote state is not encrypted",
	"payload is too small to decrypt",
	"unsupported encryption version",
}

// gossipLevels maps memberlist's line prefixes to slog levels.
var gossipLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[DEBUG]", slog.LevelDebug}, {"[TRACE]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError},
}

func (g *gossipLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for _, gl := range gossipLevels {
		if strings.HasPrefix(line, gl.prefix) {
			level, line = gl.level, strings.TrimSpace(line[len(gl.prefix):])
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	if level >= slog.LevelWarn {
		for _, h := range refusalHints {
			if strings.Contains(line, h) {
				from := fieldAfter(line, "from=")
				if n, ok := g.limiter.allow("refused " + hostOf(from)); ok {
					g.l.Warn("refused gossip: wrong or missing encrypt key?", "remote", from, "detail", line, "suppressed_since_last", n)
				}
				return len(p), nil
			}
		}
	}
	g.l.Log(context.Background(), level, line)
	return len(p), nil
}

// fieldAfter returns the word following key in s ("from=1.2.3.4:5" -> the
// address), or "".
func fieldAfter(s, key string) string {
	i := strings.Index(s, key)
	if i < 0 {
		return ""
	}
	s = s[i+len(key):]
	if j := strings.IndexAny(s, " \t"); j >= 0 {
		s = s[:j]
	}
	return s
}

// hostOf strips the port from host:port, leaving anything else as is.
func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return addr[:i]
	}
	return addr
}
