package harness

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// logsOnly is a pure-logic stand-in for a cluster: only its logs matter.
type logsOnly struct {
	Cluster
	logs map[string]string
}

func (l logsOnly) Nodes() []string { return []string{"node1", "node2", "node3"} }

func (l logsOnly) FullLogs(_ context.Context, node string) (string, error) { return l.logs[node], nil }

func TestCrashesFindsPanics(t *testing.T) {
	c := logsOnly{logs: map[string]string{
		"node1": `{"msg":"entering leader state"}` + "\npanic: runtime error: invalid memory address or nil pointer dereference\n\ngoroutine 13 [running]:\ngithub.com/hashicorp/raft.(*Raft).ApplyLog(0x0)\n",
		"node2": `{"msg":"a log line that mentions no panic"}`,
		"node3": "fatal error: concurrent map writes\n",
	}}
	got := Crashes(t.Context(), c)
	if len(got) != 2 || !strings.HasPrefix(got[0].Detail, "node1: panic: runtime error") || !strings.Contains(got[0].Detail, "ApplyLog") ||
		!strings.HasPrefix(got[1].Detail, "node3: fatal error") {
		t.Fatalf("crashes = %+v", got)
	}
}

// unreadable is a cluster one of whose logs cannot be read.
type unreadable struct{ logsOnly }

func (u unreadable) FullLogs(ctx context.Context, node string) (string, error) {
	if node == "node2" {
		return "", errors.New("no such container")
	}
	return u.logsOnly.FullLogs(ctx, node)
}

// An unreadable log used to be skipped: the crashes in it went unseen.
func TestMutationUnreadableLogIsReported(t *testing.T) {
	got := Crashes(t.Context(), unreadable{logsOnly{logs: map[string]string{"node1": "ok", "node3": "ok"}}})
	if len(got) != 1 || !strings.HasPrefix(got[0].Detail, "node2: log unreadable") {
		t.Fatalf("crashes = %+v, want node2's unreadable log", got)
	}
}

// A node that exits by itself has crashed, even without a panic in its
// log; the harness's own kills are not crashes.
func TestMutationExitWithoutPanicIsACrash(t *testing.T) {
	var l exitLog
	clock := runClock{start: time.Now()}
	l.expectExit("node1")
	l.record("node1", time.Now(), 137) // the harness's kill
	undo := l.expectExit("node2")
	undo() // a kill that failed
	l.record("node2", time.Now(), 1)
	l.record("node3", time.Now(), 0)
	got := CheckExits(l.list(), clock)
	if len(got) != 2 || !strings.HasPrefix(got[0].Detail, "node2 exited with status 1") || !strings.HasPrefix(got[1].Detail, "node3 exited with status 0") {
		t.Fatalf("anomalies = %+v, want node2 and node3", got)
	}
}
