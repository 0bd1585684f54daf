package cluster_test

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// logBook keeps every log line of a test cluster so tests can wait for
// what a node reported (a refused handshake, a membership change). With
// KVNODE_TEST_LOGS=1 the lines are also printed.
type logBook struct {
	mu    sync.Mutex
	lines []string
	echo  bool
}

func newLogBook(t *testing.T) (*slog.Logger, *logBook) {
	b := &logBook{echo: os.Getenv("KVNODE_TEST_LOGS") != ""}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func (b *logBook) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, string(bytes.TrimSpace(p)))
	if b.echo {
		_, _ = os.Stderr.Write(p)
	}
	return len(p), nil
}

// find returns the first line holding every fragment, or "".
func (b *logBook) find(fragments ...string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.lines {
		ok := true
		for _, f := range fragments {
			if !strings.Contains(l, f) {
				ok = false
				break
			}
		}
		if ok {
			return l
		}
	}
	return ""
}

// waitFor returns a Poll condition that holds once a line with every
// fragment was logged.
func (b *logBook) waitFor(fragments ...string) func() string {
	return func() string {
		if b.find(fragments...) == "" {
			return "no log line with " + strings.Join(fragments, " + ")
		}
		return ""
	}
}
