package harness

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/kvnode/kvnode/client"
)

// Status is what the harness knows about an operation's effect.
type Status string

const (
	// StatusOK: acknowledged.
	StatusOK Status = "ok"
	// StatusFail: definitely had no effect (a write refused before it was
	// proposed, a dial failure) or a read that returned nothing usable.
	StatusFail Status = "fail"
	// StatusInfo: a write that may or may not have been applied.
	StatusInfo Status = "info"
)

// Op is one recorded operation. Times are nanoseconds since the run began
// (monotonic), so they order correctly however the wall clock moves.
type Op struct {
	ID       int      `json:"id"`
	Worker   int      `json:"worker"`
	Node     string   `json:"node"`
	Storage  string   `json:"storage"`
	Workload string   `json:"workload"` // register | group | ttl | final
	F        string   `json:"f"`        // set | get | del
	Keys     []string `json:"keys"`
	// Value is what a set wrote to every key.
	Value string `json:"value,omitempty"`
	// Deadline is a TTL set's expiry, in run time.
	Deadline int64 `json:"deadline,omitempty"`
	// Read holds a get's result; keys that were absent are missing.
	Read     map[string]string `json:"read,omitempty"`
	Invoke   int64             `json:"invoke"`
	Complete int64             `json:"complete"`
	Status   Status            `json:"status"`
	ErrKind  string            `json:"error_kind,omitempty"`
	Err      string            `json:"error,omitempty"`
	// Final marks the reads taken after the run healed and converged.
	Final bool `json:"final,omitempty"`
}

// History collects operations from concurrent workers.
type History struct {
	mu  sync.Mutex
	ops []Op
}

// Add records a completed operation and returns its id.
func (h *History) Add(op Op) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.ID = len(h.ops)
	h.ops = append(h.ops, op)
	return op.ID
}

// Ops returns a copy of the operations sorted by invocation.
func (h *History) Ops() []Op {
	h.mu.Lock()
	out := append([]Op(nil), h.ops...)
	h.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Invoke < out[j].Invoke })
	return out
}

// WriteJSONL writes the history, one operation a line.
func WriteJSONL(path string, ops []Op) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for i := range ops {
		if err := enc.Encode(&ops[i]); err != nil {
			_ = f.Close()
			return fmt.Errorf("write history: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return fmt.Errorf("write history: %w", err)
	}
	return f.Close()
}

// Classify maps a call's error to a status and a short kind for the summary.
// Only refusals the server guarantees were never proposed, and failures to
// send at all, make a write definitely failed; every other write error is
// possibly applied. A read error of any kind discards the read.
//
// The server's text is the method's prefix ("rpc_set: ") and then the
// cluster's error, which says first what happened and may quote other
// errors after (a forwarded write quotes the leader's answer): only its
// start counts, and "outcome unknown" is looked for first.
func Classify(err error, write bool) (Status, string) {
	if err == nil {
		return StatusOK, ""
	}
	var se *client.ServerError
	kind := "other"
	definite := false
	switch {
	case errors.As(err, &se):
		switch t := serverCause(se.Text); {
		case strings.HasPrefix(t, "outcome unknown"):
			kind = "outcome-unknown"
		case strings.HasPrefix(t, "node is shutting down"):
			kind = "shutting-down"
		case strings.HasPrefix(t, "no leader: write not applied"):
			kind, definite = "no-leader", true
		case strings.HasPrefix(t, "no leader: linearizable read could not be confirmed"):
			kind, definite = "read-not-confirmed", true
		default:
			kind = "server-error"
		}
	case errors.Is(err, client.ErrDial) || errors.Is(err, client.ErrClosed):
		kind, definite = "dial", true
	case client.IsUnknownOutcome(err):
		kind = "timeout"
		if strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe") {
			kind = "conn-lost"
		}
	}
	if !write || definite {
		return StatusFail, kind
	}
	return StatusInfo, kind
}

// methodPrefix is the "rpc_set: " RoadRunner puts before a method's errors.
var methodPrefix = regexp.MustCompile(`^rpc_[a-z]+: `)

// serverCause strips the method prefix from a server's error text.
func serverCause(text string) string {
	return strings.TrimPrefix(text, methodPrefix.FindString(text))
}
