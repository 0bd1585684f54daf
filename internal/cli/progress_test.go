package cli

import (
	"bytes"
	"testing"
	"time"
)

func TestProgress_Lines(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "saving", 3*progressMin)
	now := time.Unix(0, 0)
	p.now = func() time.Time { return now }
	p.add(progressMin) // first update prints
	p.add(1)           // throttled
	now = now.Add(progressEveryLog)
	p.add(progressMin)
	p.add(progressMin - 1) // the end always prints
	p.finish()
	want := "saving: 8.0 MiB / 24.0 MiB (33%)\nsaving: 16.0 MiB / 24.0 MiB (66%)\nsaving: 24.0 MiB / 24.0 MiB (100%)\n"
	if buf.String() != want {
		t.Fatalf("progress:\n%s\nwant:\n%s", buf.String(), want)
	}
	buf.Reset()
	small := newProgress(&buf, "saving", progressMin-1)
	small.add(progressMin - 1)
	small.finish()
	if buf.Len() != 0 {
		t.Fatalf("a small transfer showed progress: %q", buf.String())
	}
}
