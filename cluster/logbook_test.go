package cluster

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// LogBook keeps every log line of a test's nodes so tests can wait for what
// a node reported (a refused handshake, a membership change). With
// KVNODE_TEST_LOGS=1 the lines are echoed to stderr. It lives in a _test
// file of package cluster so both the package's own tests and cluster_test
// use it.
type LogBook struct {
	mu    sync.Mutex
	lines []string
	echo  bool
}

// NewLogBook returns a debug-level logger writing into a new LogBook.
func NewLogBook() (*slog.Logger, *LogBook) {
	b := &LogBook{echo: os.Getenv("KVNODE_TEST_LOGS") != ""}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func (b *LogBook) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, string(bytes.TrimSpace(p)))
	if b.echo {
		_, _ = os.Stderr.Write(p)
	}
	return len(p), nil
}

// Find returns the first line holding every fragment, or "".
func (b *LogBook) Find(fragments ...string) string {
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

// WaitFor returns a polling condition that holds once a line with every
// fragment was logged.
func (b *LogBook) WaitFor(fragments ...string) func() string {
	return func() string {
		if b.Find(fragments...) == "" {
			return "no log line with " + strings.Join(fragments, " + ")
		}
		return ""
	}
}
