package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/fsm"
	"github.com/kvnode/kvnode/fsm/backupfile"
	"github.com/kvnode/kvnode/rpc"
)

// fakeNode is a kvnode admin service that says what the test wants in its
// status and in its refusal of a restore.
type fakeNode struct {
	status     cluster.Status
	restoreErr error
	restores   atomic.Int32
}

func (f *fakeNode) Status(context.Context) (any, error) { return f.status, nil }

func (f *fakeNode) Health(context.Context) (rpc.HealthReply, error) {
	return rpc.HealthReply{NodeID: f.status.NodeID, Role: f.status.Role, Ready: true}, nil
}

func (f *fakeNode) Snapshot(context.Context, bool) (rpc.SnapshotOpenReply, io.ReadCloser, error) {
	return rpc.SnapshotOpenReply{}, nil, errors.New("not here")
}

func (f *fakeNode) Events(context.Context, rpc.EventsArgs) (any, error) {
	return nil, errors.New("no events here")
}

func (f *fakeNode) Restore(_ context.Context, r io.Reader) (any, error) {
	f.restores.Add(1)
	if f.restoreErr != nil {
		return nil, f.restoreErr
	}
	_, err := io.Copy(io.Discard, r)
	return cluster.RestoreInfo{}, err
}

func serveFake(t *testing.T, f *fakeNode) string {
	t.Helper()
	srv, err := rpc.New(rpc.Config{Listen: "tcp://127.0.0.1:0", Admin: f}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "tcp://" + srv.Addr().String()
}

// bufSink collects a state machine snapshot.
type bufSink struct{ bytes.Buffer }

func (*bufSink) ID() string    { return "test" }
func (*bufSink) Cancel() error { return nil }
func (*bufSink) Close() error  { return nil }

// writeTestBackup writes a valid backup file of an empty memory storage.
func writeTestBackup(t *testing.T) string {
	t.Helper()
	f := fsm.New(map[string]drivers.Engine{"mem": memory.New()}, nil)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "b.kvsnap")
	bw, err := backupfile.Create(path, backupfile.Meta{NodeID: "n1", Size: int64(sink.Len())})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bw.Write(sink.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := bw.Commit(); err != nil {
		t.Fatal(err)
	}
	return path
}

// countingListener counts the connections made to it.
func countingListener(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			_ = c.Close()
		}
	}()
	return "tcp://" + ln.Addr().String(), &n
}

// snapshot restore used to send the backup (and now the admin token) to
// any address written after "leader RPC address" in a node's error text.
// It now goes only to the leader the named node's status reports, and only
// once that node confirms it leads.
func TestSnapshot_RestoreNeverFollowsAddressesInErrorTexts(t *testing.T) {
	file := writeTestBackup(t)
	elsewhere, dialled := countingListener(t)

	liar := serveFake(t, &fakeNode{
		status:     cluster.Status{NodeID: "n1", Role: cluster.RoleLeader},
		restoreErr: errors.New("not the leader; leader RPC address " + elsewhere),
	})
	code, _, errs := runVerb(t, "snapshot", "restore", file, "--rpc", liar, "--timeout", "2s")
	if code != 1 || !strings.Contains(errs, "not the leader") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if n := dialled.Load(); n != 0 {
		t.Fatalf("the restore went to the address in the error text (%d connections)", n)
	}

	// A follower's status names the leader; the node at that address must
	// say it is that leader before anything is sent.
	impostor := &fakeNode{status: cluster.Status{NodeID: "n3", Role: cluster.RoleFollower}}
	impostorAddr := serveFake(t, impostor)
	follower := &fakeNode{
		status: cluster.Status{NodeID: "n1", Role: cluster.RoleFollower, LeaderID: "n2",
			Members: []cluster.MemberStatus{{ID: "n2", Address: "127.0.0.1:7000", RPCAddress: impostorAddr}}},
		restoreErr: cluster.ErrNotLeader,
	}
	code, _, errs = runVerb(t, "snapshot", "restore", file, "--rpc", serveFake(t, follower), "--timeout", "2s")
	if code != 1 || !strings.Contains(errs, "names n2 at "+impostorAddr+" as the leader, but that node is n3") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if impostor.restores.Load() != 0 || follower.restores.Load() != 0 {
		t.Fatal("a restore was sent to a node that is not the leader")
	}

	// The real leader at the address the follower reports gets it.
	leader := &fakeNode{status: cluster.Status{NodeID: "n2", Role: cluster.RoleLeader}}
	follower.status.Members[0].RPCAddress = serveFake(t, leader)
	code, _, errs = runVerb(t, "snapshot", "restore", file, "--rpc", serveFake(t, follower), "--timeout", "2s")
	if code != 0 || leader.restores.Load() != 1 || !strings.Contains(errs, "sending the restore to the leader at") {
		t.Fatalf("exit %d, %d restores on the leader, stderr %q", code, leader.restores.Load(), errs)
	}
}
