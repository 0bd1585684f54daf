package cluster

import (
	"log"
	"strings"
	"testing"
)

func TestGossipLog_LevelsAndRefusals(t *testing.T) {
	l, book := NewLogBook()
	ml := log.New(newGossipLog(l), "", 0)
	ml.Printf("[DEBUG] memberlist: Stream connection from=127.0.0.1:1")
	ml.Printf("[WARN] memberlist: Was able to connect to node2 over TCP but UDP probes failed")
	for range 3 {
		ml.Printf("[ERR] memberlist: failed to receive: No installed keys could decrypt the message from=10.1.2.3:4567")
	}
	if book.Find("level=DEBUG", "subsystem=gossip", `msg="Stream connection from=127.0.0.1:1"`) == "" {
		t.Error("debug line lost its level or kept its prefix")
	}
	if book.Find("level=WARN", "Was able to connect") == "" {
		t.Error("warning lost its level")
	}
	refused := 0
	for _, l := range book.lines {
		if strings.Contains(l, "refused gossip") {
			refused++
			if !strings.Contains(l, "remote=10.1.2.3:4567") || !strings.Contains(l, "level=WARN") {
				t.Errorf("refusal line: %s", l)
			}
		}
	}
	if refused != 1 {
		t.Errorf("%d refusal lines for one source within the interval, want 1", refused)
	}
}
