package redis

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestClientLogger_WritesToSlog(t *testing.T) {
	var buf bytes.Buffer
	l := ClientLogger{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	l.Printf(t.Context(), "dial %s failed", "127.0.0.1:1")
	if out := buf.String(); !strings.Contains(out, "dial 127.0.0.1:1 failed") || !strings.Contains(out, "level=WARN") {
		t.Fatalf("logged %q, want the formatted message at WARN", out)
	}
	ClientLogger{}.Printf(t.Context(), "no logger: %d", 1) // must not panic
}
