package cluster

import (
	"net"
	"net/rpc"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/fsm"
	eventlog "github.com/kvnode/kvnode/log"
)

// A follower may forward to this address while the node is still starting
// (it was the leader before a restart). The call must wait for raft, not
// find it missing: forwarding used to be served before raft existed, and
// such a call crashed the node with a nil pointer.
func TestNode_ForwardedCallDuringStartupWaitsForRaft(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()

	// The caller is connected and has sent its request before Open runs.
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte{protoForward}); err != nil {
		t.Fatal(err)
	}
	c := rpc.NewClient(conn)
	defer func() { _ = c.Close() }() // the caller's side, not under test
	raw, err := eventlog.Encode(eventlog.Event{Storage: "mem", Op: drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "k", Value: []byte("v")}}}})
	if err != nil {
		t.Fatal(err)
	}
	var reply ProposeReply
	call := c.Go(peerService+".Propose", ProposeArgs{Events: [][]byte{raw}, Timeout: 5 * time.Second}, &reply, make(chan *rpc.Call, 1))

	f := fsm.New(map[string]drivers.Engine{"mem": memory.New()}, nil)
	n, err := Open(Config{
		NodeID:  "n1",
		DataDir: filepath.Join(t.TempDir(), "raft"),
		Raft:    RaftConfig{Bind: addr, Advertise: addr, HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond},
	}, f, Options{Listener: ln})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	}()

	select {
	case done := <-call.Done:
		if done.Error != nil {
			t.Fatalf("forwarded call failed: %v", done.Error)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("forwarded call never answered")
	}
	// A lone node leads itself once elected; whether it had by then, the
	// answer is a proper reply: applied, or retry.
	if len(reply.Results) != 1 || (reply.Results[0].Code != codeOK && reply.Results[0].Code != codeRetry) {
		t.Fatalf("reply = %+v", reply)
	}
}
