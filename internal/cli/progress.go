package cli

import (
	"fmt"
	"io"
	"os"
	"time"
)

const (
	// progressMin is the transfer size from which a progress line is
	// shown: smaller ones finish before anyone would read it.
	progressMin = 8 << 20
	// progressEvery throttles updates on a terminal; elsewhere (a log) a
	// line is written at most every progressEveryLog.
	progressEvery    = 250 * time.Millisecond
	progressEveryLog = 5 * time.Second
)

// progress prints "saving: 12.0 MiB / 96.0 MiB (12%)" to stderr while a
// large backup moves: rewritten in place on a terminal, as separate lines
// otherwise.
type progress struct {
	w           io.Writer
	verb        string
	total, done int64
	tty, shown  bool
	last        time.Time
	now         func() time.Time
}

func newProgress(w io.Writer, verb string, total int64) *progress {
	return &progress{w: w, verb: verb, total: total, tty: writerIsTerminal(w), now: time.Now}
}

func (p *progress) add(n int) {
	p.done += int64(n)
	if p.total < progressMin {
		return
	}
	every := progressEveryLog
	if p.tty {
		every = progressEvery
	}
	if now := p.now(); p.done >= p.total || now.Sub(p.last) >= every {
		p.last = now
		p.print()
	}
}

func (p *progress) print() {
	pct := int64(100)
	if p.total > 0 {
		pct = min(100*p.done/p.total, 100)
	}
	line := fmt.Sprintf("%s: %s / %s (%d%%)", p.verb, humanBytes(p.done), humanBytes(p.total), pct)
	if p.tty {
		fmt.Fprint(p.w, "\r"+line+"\033[K")
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.shown = true
}

// finish ends the line on a terminal.
func (p *progress) finish() {
	if p.shown && p.tty {
		fmt.Fprintln(p.w)
	}
	p.shown = false
}

// humanBytes renders a size in B, KiB, MiB or GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n), []string{"KiB", "MiB", "GiB", "TiB"}
	i := -1
	for v >= unit && i < len(suffix)-1 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", v, suffix[i])
}

// fileSize is a file's size, 0 when it cannot be read (the open that
// follows reports why).
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
