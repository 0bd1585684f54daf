package rpc

import (
	"sync"
	"time"
)

// refusalLogEvery spaces the warnings about refused connections and refused
// admin calls: a flood must not become a flood of log lines too.
const refusalLogEvery = 10 * time.Second

// throttle lets a repeated warning through at most once per interval and
// counts the events each line stands for.
type throttle struct {
	every time.Duration

	mu   sync.Mutex
	last time.Time
	held int
}

// note records one event at now. It says whether to log it, and how many
// events (this one and those held back since the last line) the line covers.
func (t *throttle) note(now time.Time) (n int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.held++
	if !t.last.IsZero() && now.Sub(t.last) < t.every {
		return 0, false
	}
	n, t.held, t.last = t.held, 0, now
	return n, true
}
