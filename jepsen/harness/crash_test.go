package harness

import (
	"context"
	"strings"
	"testing"
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
