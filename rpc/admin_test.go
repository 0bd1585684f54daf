package rpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	netrpc "net/rpc"
	"strings"
	"sync"
	"testing"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
	"github.com/roadrunner-server/goridge/v3/pkg/frame"

	"github.com/kvnode/kvnode/drivers/memory"
)

// streamAdmin is an Admin over a byte slice: Snapshot serves it, Restore
// reads a stream into restored. It stands for the cluster, which the
// cmd/kvnode tests use for real.
type streamAdmin struct {
	snapshot []byte
	// failRestore makes Restore give up at once, without reading.
	failRestore error

	mu       sync.Mutex
	restored [][]byte
	restErrs []error
}

type statusReply struct {
	NodeID string
	Keys   int
}

func (a *streamAdmin) Status(context.Context) (any, error) {
	return statusReply{NodeID: "n1", Keys: 42}, nil
}

func (a *streamAdmin) Health(context.Context) (HealthReply, error) {
	return HealthReply{NodeID: "n1", Role: "leader", Ready: true}, nil
}

func (a *streamAdmin) Snapshot(_ context.Context, stale bool) (SnapshotOpenReply, io.ReadCloser, error) {
	if stale {
		return SnapshotOpenReply{}, nil, errors.New("no stale snapshots here")
	}
	return SnapshotOpenReply{NodeID: "n1", Index: 7, Term: 2, Size: int64(len(a.snapshot))},
		io.NopCloser(bytes.NewReader(a.snapshot)), nil
}

type restoreReply struct{ Size int }

func (a *streamAdmin) Restore(_ context.Context, r io.Reader) (any, error) {
	if a.failRestore != nil {
		return nil, a.failRestore
	}
	b, err := io.ReadAll(r)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.restErrs = append(a.restErrs, err)
		return nil, err
	}
	a.restored = append(a.restored, b)
	return restoreReply{Size: len(b)}, nil
}

type eventsReply struct{ Since uint64 }

// Events echoes what it was asked, so a test sees the arguments arrive.
func (a *streamAdmin) Events(_ context.Context, args EventsArgs) (any, error) {
	return eventsReply{Since: args.Since}, nil
}

type callRecorder struct {
	mu    sync.Mutex
	calls []string
}

func (o *callRecorder) ObserveCall(method, storage string, _ time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, fmt.Sprintf("%s %q %v", method, storage, err != nil))
}

func adminServer(t *testing.T, a Admin, cfg Config) *netrpc.Client {
	t.Helper()
	cfg.Admin = a
	s := startServer(t, cfg, nil, Storage{Name: "default", Driver: memory.Driver(), Store: newMemory(t), Inline: true})
	return dialClient(t, s.Server)
}

func serverErr(t *testing.T, err error) string {
	t.Helper()
	var se netrpc.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("want a server error, got %v", err)
	}
	return string(se)
}

func TestAdmin_StatusAndHealth(t *testing.T) {
	obs := &callRecorder{}
	c := adminServer(t, &streamAdmin{}, Config{Observer: obs})
	var st statusReply
	if err := c.Call(MethodStatus, nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.NodeID != "n1" || st.Keys != 42 {
		t.Fatalf("status %+v", st)
	}
	var h HealthReply
	if err := c.Call(MethodHealth, nil, &h); err != nil {
		t.Fatal(err)
	}
	if !h.Ready || h.Role != "leader" {
		t.Fatalf("health %+v", h)
	}
	e := serverErr(t, c.Call(AdminService+".Nope", nil, &h))
	if e != "rpc: can't find method kvnode.Nope" {
		t.Fatalf("unknown method: %q", e)
	}
	obs.mu.Lock()
	got := strings.Join(obs.calls, "; ")
	obs.mu.Unlock()
	if got != `kvnode.Status "" false; kvnode.Health "" false` {
		t.Fatalf("observed %s", got)
	}
}

// JSON clients (other languages' goridge) get JSON back; proto is refused.
func TestAdmin_Codecs(t *testing.T) {
	s := startServer(t, Config{Admin: &streamAdmin{}}, nil)
	nc := dialRaw(t, s.Server)
	if _, err := nc.Write(rawFrame(frame.CodecJSON, 1, MethodHealth, []byte("{}"))); err != nil {
		t.Fatal(err)
	}
	r := readReply(t, nc)
	if r.flags&frame.ERROR != 0 || r.flags&frame.CodecJSON == 0 || !strings.Contains(string(r.body), `"Ready":true`) {
		t.Fatalf("JSON health: flags %#x body %s", r.flags, r.body)
	}
	if _, err := nc.Write(rawFrame(frame.CodecProto, 2, MethodHealth, nil)); err != nil {
		t.Fatal(err)
	}
	r = readReply(t, nc)
	if r.flags&frame.ERROR == 0 || !strings.Contains(string(r.body), "accepts gob") {
		t.Fatalf("proto health: flags %#x body %s", r.flags, r.body)
	}
}

func TestAdmin_NotConfigured(t *testing.T) {
	s, _ := memoryServer(t)
	c := dialClient(t, s.Server)
	e := serverErr(t, c.Call(MethodStatus, nil, &HealthReply{}))
	if e != "rpc: can't find service kvnode.Status" {
		t.Fatalf("got %q", e)
	}
}

func TestAdmin_SnapshotDownload(t *testing.T) {
	data := make([]byte, 2*MaxChunk+12345)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	c := adminServer(t, &streamAdmin{snapshot: data}, Config{})

	var open SnapshotOpenReply
	if err := c.Call(MethodSnapshotOpen, SnapshotOpenArgs{}, &open); err != nil {
		t.Fatal(err)
	}
	if open.ID == "" || open.Size != int64(len(data)) || open.Index != 7 {
		t.Fatalf("open %+v", open)
	}
	var got []byte
	for chunks := 0; ; chunks++ {
		if chunks > 4 {
			t.Fatal("no EOF after the whole stream")
		}
		var r SnapshotReadReply
		if err := c.Call(MethodSnapshotRead, SnapshotReadArgs{ID: open.ID, Offset: int64(len(got))}, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Data) > MaxChunk {
			t.Fatalf("chunk of %d bytes", len(r.Data))
		}
		got = append(got, r.Data...)
		if r.EOF {
			break
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatal("downloaded bytes differ")
	}
	e := serverErr(t, c.Call(MethodSnapshotRead, SnapshotReadArgs{ID: open.ID, Offset: int64(len(got))}, &SnapshotReadReply{}))
	if !strings.Contains(e, ErrAdminSession.Error()) {
		t.Fatalf("read after EOF: %q", e)
	}

	// A chunk out of order ends the session.
	if err := c.Call(MethodSnapshotOpen, SnapshotOpenArgs{}, &open); err != nil {
		t.Fatal(err)
	}
	e = serverErr(t, c.Call(MethodSnapshotRead, SnapshotReadArgs{ID: open.ID, Offset: 5}, &SnapshotReadReply{}))
	if !strings.Contains(e, "chunk out of order") {
		t.Fatalf("bad offset: %q", e)
	}
	e = serverErr(t, c.Call(MethodSnapshotOpen, SnapshotOpenArgs{Stale: true}, &open))
	if e != "kvnode.SnapshotOpen: no stale snapshots here" {
		t.Fatalf("admin error: %q", e)
	}
}

func restoreStream(t *testing.T, c *netrpc.Client, data []byte, sum []byte) (restoreReply, error) {
	t.Helper()
	var begin RestoreBeginReply
	if err := c.Call(MethodRestoreBegin, RestoreBeginArgs{Size: int64(len(data))}, &begin); err != nil {
		return restoreReply{}, err
	}
	for off := 0; off < len(data); {
		n := min(begin.MaxChunk, len(data)-off)
		var w RestoreWriteReply
		if err := c.Call(MethodRestoreWrite, RestoreWriteArgs{ID: begin.ID, Offset: int64(off), Data: data[off : off+n]}, &w); err != nil {
			return restoreReply{}, err
		}
		off += n
		if w.Written != int64(off) {
			t.Fatalf("server has %d, sent %d", w.Written, off)
		}
	}
	var res restoreReply
	err := c.Call(MethodRestoreCommit, RestoreCommitArgs{ID: begin.ID, SHA256: sum}, &res)
	return res, err
}

func TestAdmin_Restore(t *testing.T) {
	a := &streamAdmin{}
	// A small frame limit makes the server ask for smaller chunks.
	c := adminServer(t, a, Config{MaxFrameSize: 64 << 10})
	data := bytes.Repeat([]byte("kvnode"), 50_000)
	sum := sha256.Sum256(data)

	res, err := restoreStream(t, c, data, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != len(data) || len(a.restored) != 1 || !bytes.Equal(a.restored[0], data) {
		t.Fatalf("restore result %+v, %d restores", res, len(a.restored))
	}

	// A digest mismatch reaches Restore as a failed stream.
	_, err = restoreStream(t, c, data, make([]byte, 32))
	if e := serverErr(t, err); !strings.Contains(e, ErrRestoreChecksum.Error()) {
		t.Fatalf("bad digest: %q", e)
	}
	a.mu.Lock()
	if len(a.restored) != 1 || len(a.restErrs) != 1 || !errors.Is(a.restErrs[0], ErrRestoreChecksum) {
		t.Fatalf("restores %d, errors %v", len(a.restored), a.restErrs)
	}
	a.mu.Unlock()

	// One restore at a time; an aborted one frees the slot.
	var b1, b2 RestoreBeginReply
	if err := c.Call(MethodRestoreBegin, RestoreBeginArgs{}, &b1); err != nil {
		t.Fatal(err)
	}
	if e := serverErr(t, c.Call(MethodRestoreBegin, RestoreBeginArgs{}, &b2)); !strings.Contains(e, "another restore is running") {
		t.Fatalf("second restore: %q", e)
	}
	if err := c.Call(MethodRestoreAbort, RestoreAbortArgs{ID: b1.ID}, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Call(MethodRestoreBegin, RestoreBeginArgs{}, &b2) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the aborted restore still holds the slot")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A Restore that refuses (not the leader) is reported on the first write.
func TestAdmin_RestoreRefused(t *testing.T) {
	c := adminServer(t, &streamAdmin{failRestore: errors.New("not the leader: try n2")}, Config{})
	data := []byte("backup")
	sum := sha256.Sum256(data)
	_, err := restoreStream(t, c, data, sum[:])
	if e := serverErr(t, err); e != "kvnode.RestoreWrite: not the leader: try n2" {
		t.Fatalf("got %q", e)
	}
}

// The calls that export or replace data need the token when the server has
// one; status, health and kv.* do not (the PHP client cannot send any).
// They used to answer anyone who reached the port.
func TestAdmin_TokenGatesDataCalls(t *testing.T) {
	const token = "0123456789abcdef-secret"
	a := &streamAdmin{snapshot: []byte("state")}
	s := startServer(t, Config{Admin: a, AdminToken: token}, nil,
		Storage{Name: "default", Driver: memory.Driver(), Store: newMemory(t), Inline: true})
	c := dialClient(t, s.Server)
	auth := AdminAuth{Token: token}

	denied := map[string]any{
		MethodSnapshotOpen:  SnapshotOpenArgs{},
		MethodSnapshotRead:  SnapshotReadArgs{ID: "x"},
		MethodSnapshotClose: SnapshotCloseArgs{ID: "x"},
		MethodRestoreBegin:  RestoreBeginArgs{Size: 1},
		MethodRestoreWrite:  RestoreWriteArgs{ID: "x", Data: []byte("x")},
		MethodRestoreCommit: RestoreCommitArgs{ID: "x"},
		MethodRestoreAbort:  RestoreAbortArgs{ID: "x"},
		MethodEvents:        EventsArgs{},
	}
	for method, args := range denied {
		e := serverErr(t, c.Call(method, args, &SnapshotOpenReply{}))
		if !strings.HasPrefix(e, method+": admin token required: ") || !strings.Contains(e, "--token or KVNODE_ADMIN_TOKEN") {
			t.Errorf("%s without a token: %q", method, e)
		}
	}
	e := serverErr(t, c.Call(MethodSnapshotOpen, SnapshotOpenArgs{AdminAuth: AdminAuth{Token: token + "x"}}, &SnapshotOpenReply{}))
	if e != MethodSnapshotOpen+": admin token required: the token does not match rpc.admin_token" {
		t.Errorf("wrong token: %q", e)
	}
	// A client that predates tokens sends arguments without the field.
	type oldOpenArgs struct{ Stale bool }
	if e := serverErr(t, c.Call(MethodSnapshotOpen, oldOpenArgs{}, &SnapshotOpenReply{})); !strings.Contains(e, "predates admin tokens") {
		t.Errorf("old client: %q", e)
	}
	if len(a.restored) != 0 {
		t.Fatal("a refused restore reached the Admin")
	}

	// Open calls.
	if err := c.Call(MethodHealth, nil, &HealthReply{}); err != nil {
		t.Fatalf("health: %v", err)
	}
	if err := c.Call(MethodStatus, nil, &statusReply{}); err != nil {
		t.Fatalf("status: %v", err)
	}
	mustCall(t, c, "kv.Set", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("k", "v", "")}})

	var ev eventsReply
	if err := c.Call(MethodEvents, EventsArgs{AdminAuth: auth, Since: 9}, &ev); err != nil || ev.Since != 9 {
		t.Fatalf("events with the token: %+v, %v", ev, err)
	}
	// With the token, everything works.
	var open SnapshotOpenReply
	if err := c.Call(MethodSnapshotOpen, SnapshotOpenArgs{AdminAuth: auth}, &open); err != nil {
		t.Fatal(err)
	}
	var r SnapshotReadReply
	if err := c.Call(MethodSnapshotRead, SnapshotReadArgs{AdminAuth: auth, ID: open.ID}, &r); err != nil || string(r.Data) != "state" {
		t.Fatalf("read: %v %q", err, r.Data)
	}
	data := []byte("backup")
	sum := sha256.Sum256(data)
	var begin RestoreBeginReply
	if err := c.Call(MethodRestoreBegin, RestoreBeginArgs{AdminAuth: auth, Size: int64(len(data))}, &begin); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(MethodRestoreWrite, RestoreWriteArgs{AdminAuth: auth, ID: begin.ID, Data: data}, &RestoreWriteReply{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(MethodRestoreCommit, RestoreCommitArgs{AdminAuth: auth, ID: begin.ID, SHA256: sum[:]}, &restoreReply{}); err != nil {
		t.Fatal(err)
	}
	if len(a.restored) != 1 {
		t.Fatal("the restore with the token did not happen")
	}

	// Every data call is logged with the client's address, refusals too.
	// The test's connections all come from 127.0.0.1.
	remote := "remote=127.0.0.1:"
	for _, line := range []string{"rpc: admin: backup download opened", "rpc: admin: restore started",
		"rpc: admin: restore committed", "rpc: admin call refused"} {
		if !logLineWith(s.log.String(), line, remote) {
			t.Errorf("no %q line with %s in the log", line, remote)
		}
	}
}

func logLineWith(log string, parts ...string) bool {
	for line := range strings.SplitSeq(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// Without a token, the admin service may only listen where nobody else
// can connect: loopback or a unix socket. Anything else refuses to start,
// naming the fix.
func TestAdmin_RefusesNonLocalAddressWithoutToken(t *testing.T) {
	s, err := New(Config{Listen: "tcp://0.0.0.0:0", Admin: &streamAdmin{}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Listen()
	if !errors.Is(err, ErrInsecureAdmin) || !strings.Contains(err.Error(), "set rpc.admin_token (or rpc.admin_token_file)") {
		t.Fatalf("Listen on 0.0.0.0 without a token = %v", err)
	}
	if s.Addr() != nil {
		t.Fatal("the refused listener stayed open")
	}
	for _, listen := range []string{"tcp://127.0.0.1:0", "tcp://[::1]:0", unixListen(t)} {
		if listen == "tcp://[::1]:0" {
			if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
				continue // no IPv6 loopback here
			} else {
				_ = ln.Close()
			}
		}
		s, err := New(Config{Listen: listen, Admin: &streamAdmin{}}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Listen(); err != nil {
			t.Errorf("%s without a token: %v", listen, err)
		}
		_ = s.Shutdown(t.Context())
	}
	for _, tt := range []struct {
		addr  net.Addr
		local bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, true},
		{&net.TCPAddr{IP: net.IPv4(127, 1, 2, 3)}, true},
		{&net.TCPAddr{IP: net.IPv6loopback}, true},
		{&net.TCPAddr{IP: net.IPv4zero}, false},
		{&net.TCPAddr{IP: net.IPv6unspecified}, false},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 7)}, false},
		{&net.UnixAddr{Name: "/run/kv.sock", Net: "unix"}, true},
	} {
		if got := localOnly(tt.addr); got != tt.local {
			t.Errorf("localOnly(%v) = %v", tt.addr, got)
		}
	}
}

// An older server, whose argument types lack AdminAuth, still decodes a
// new client's arguments: gob skips the field it does not know.
func TestAdmin_TokenFieldIsIgnoredByOlderServers(t *testing.T) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(SnapshotReadArgs{AdminAuth: AdminAuth{Token: "t"}, ID: "s1", Offset: 42}); err != nil {
		t.Fatal(err)
	}
	var old struct {
		ID     string
		Offset int64
	}
	if err := gob.NewDecoder(&buf).Decode(&old); err != nil || old.ID != "s1" || old.Offset != 42 {
		t.Fatalf("old server decoded %+v, %v", old, err)
	}
}
