package harness

import (
	"fmt"
	"sync"
	"time"
)

// Exit is a node's process ending.
type Exit struct {
	Node string
	At   time.Time
	// Status is the exit status (128+signal for a signal, as docker and
	// shells report it).
	Status int
	// Expected is true when the harness killed or stopped the node.
	Expected bool
}

// exitLog records exits and tells the harness's own kills from the rest:
// a kill announced with expect makes the node's next exit expected.
type exitLog struct {
	mu     sync.Mutex
	expect map[string]int
	exits  []Exit
}

// expect announces that the harness is about to kill node; undo takes the
// announcement back when the kill failed.
func (l *exitLog) expectExit(node string) (undo func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.expect == nil {
		l.expect = map[string]int{}
	}
	l.expect[node]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.expect[node] = max(l.expect[node]-1, 0)
	}
}

// record notes an exit, expected when a kill of that node was announced.
func (l *exitLog) record(node string, at time.Time, status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := Exit{Node: node, At: at, Status: status}
	if l.expect[node] > 0 {
		l.expect[node]--
		e.Expected = true
	}
	l.exits = append(l.exits, e)
}

func (l *exitLog) list() []Exit {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Exit(nil), l.exits...)
}

// CheckExits reports every exit the harness did not cause: a node that
// ends by itself, with or without a panic in its log, has crashed.
func CheckExits(exits []Exit, clock runClock) []Anomaly {
	var out []Anomaly
	for _, e := range exits {
		if !e.Expected {
			out = append(out, Anomaly{Check: "crash", Detail: fmt.Sprintf("%s exited with status %d at %s into the run without being killed by the harness",
				e.Node, e.Status, time.Duration(clock.fromWall(e.At)).Round(time.Millisecond))})
		}
	}
	return out
}
