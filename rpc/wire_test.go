package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-json"
	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
	"google.golang.org/protobuf/proto"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
)

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServer_ReplyFormat checks the reply frame byte for byte against what
// RoadRunner's codec writes.
func TestServer_ReplyFormat(t *testing.T) {
	srv, _ := memoryServer(t)
	nc := dialRaw(t, srv.Server)

	set := marshal(t, &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("k", "v", "")}})
	if _, err := nc.Write(rawFrame(0xA0, 77, "kv.Set", set)); err != nil {
		t.Fatal(err)
	}
	r := readReply(t, nc)
	if r.options != 2 || r.seq != 77 || r.flags != 0x80 || r.method != "kv.Set" || len(r.body) != 0 {
		t.Fatalf("Set reply: options %d seq %d flags %#x method %q body %q", r.options, r.seq, r.flags, r.method, r.body)
	}

	// The PHP client sends 0x80.
	if _, err := nc.Write(rawFrame(0x80, 0xFFFFFFFF, "kv.MGet", marshal(t, req("default", "k", "missing")))); err != nil {
		t.Fatal(err)
	}
	r = readReply(t, nc)
	want := marshal(t, &kvv1.Response{Items: []*kvv1.Item{{Key: "k", Value: []byte("v")}}})
	if r.seq != 0xFFFFFFFF || r.flags != 0x80 || r.method != "kv.MGet" || !bytes.Equal(r.body, want) {
		t.Fatalf("MGet reply: seq %d flags %#x method %q body % x, want % x", r.seq, r.flags, r.method, r.body, want)
	}

	if _, err := nc.Write(rawFrame(0xA0, 5, "kv.Has", marshal(t, req("ghost", "k")))); err != nil {
		t.Fatal(err)
	}
	r = readReply(t, nc)
	if r.seq != 5 || r.flags != 0xC0 || r.method != "kv.Has" || string(r.body) != "rpc_has: no such storage: ghost" {
		t.Fatalf("error reply: seq %d flags %#x method %q body %q", r.seq, r.flags, r.method, r.body)
	}
}

func TestServer_Codecs(t *testing.T) {
	srv, _ := memoryServer(t)
	nc := dialRaw(t, srv.Server)
	roundTrip := func(flags byte, method, body string) rawReply {
		t.Helper()
		if _, err := nc.Write(rawFrame(flags, 1, method, []byte(body))); err != nil {
			t.Fatal(err)
		}
		return readReply(t, nc)
	}

	// JSON, as goridge's codec speaks it (goccy/go-json on kv.v1 structs).
	r := roundTrip(0x08, "kv.Set", `{"storage":"default","items":[{"key":"k","value":"dmFs"},{"key":"e","value":""}]}`)
	if r.flags != 0x08 || string(r.body) != "{}" {
		t.Fatalf("JSON Set: flags %#x body %q", r.flags, r.body)
	}
	r = roundTrip(0x08, "kv.MGet", `{"storage":"default","items":[{"key":"k"},{"key":"e"},{"key":"none"}]}`)
	wantJSON, _ := json.Marshal(&kvv1.Response{Items: []*kvv1.Item{{Key: "k", Value: []byte("val")}, {Key: "e"}}})
	if r.flags != 0x08 || string(r.body) != string(wantJSON) || string(r.body) != `{"items":[{"key":"k","value":"dmFs"},{"key":"e"}]}` {
		t.Fatalf("JSON MGet: flags %#x body %s", r.flags, r.body)
	}
	r = roundTrip(0x08, "kv.Has", `{"storage":1}`)
	if r.flags != 0x48 || !strings.Contains(string(r.body), "cannot unmarshal number") {
		t.Fatalf("bad JSON: flags %#x body %q", r.flags, r.body)
	}
	// Precedence PROTO > JSON > RAW > MSGPACK > GOB; the reply carries only
	// the chosen bit.
	r = roundTrip(0x0C|0x10, "kv.Has", `{"storage":"default","items":[{"key":"k"}]}`)
	if r.flags != 0x08 || string(r.body) != `{"items":[{"key":"k"}]}` {
		t.Fatalf("JSON|RAW|MSGPACK: flags %#x body %q", r.flags, r.body)
	}
	for _, tt := range []struct{ in, want byte }{{0x04, 0x44}, {0x10, 0x50}, {0x20, 0x60}, {0x00, 0x60}, {0x01, 0x60}} {
		r = roundTrip(tt.in, "kv.Has", "x")
		if r.flags != tt.want || !strings.Contains(string(r.body), "unsupported codec") {
			t.Fatalf("flags %#x: reply flags %#x body %q", tt.in, r.flags, r.body)
		}
	}
	// An empty body is the zero request, whatever the codec.
	for _, flags := range []byte{0x80, 0x08} {
		r = roundTrip(flags, "kv.Has", "")
		if r.flags != flags|0x40 || string(r.body) != "rpc_has: no storage provided" {
			t.Fatalf("empty body, flags %#x: reply %#x %q", flags, r.flags, r.body)
		}
	}
	// Undecodable protobuf: error reply, connection open.
	r = roundTrip(0x80, "kv.Has", "\xff\xff\xff")
	if r.flags != 0xC0 || string(r.body) != "goridge_read_request_body: proto: cannot parse invalid wire-format data" {
		t.Fatalf("garbage proto: flags %#x body %q", r.flags, r.body)
	}
	r = roundTrip(0x80, "kv.Has", string(marshal(t, req("default", "k"))))
	if r.flags != 0x80 {
		t.Fatalf("after garbage: flags %#x body %q", r.flags, r.body)
	}
}

// TestServer_BadFrames sends frames RoadRunner's codec cannot handle: each
// closes its connection without a reply, and the server keeps serving.
func TestServer_BadFrames(t *testing.T) { forEachNetwork(t, testBadFrames) }

func testBadFrames(t *testing.T, listen string) {
	srv := startServer(t, Config{Listen: listen, MaxFrameSize: 1 << 20}, nil,
		Storage{Name: "default", Driver: memory.Driver(), Store: newMemory(t), Inline: true})
	good := rawFrame(0x80, 1, "kv.Has", marshal(t, req("default", "k")))
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }

	tests := []struct {
		name  string
		frame []byte
		log   string
	}{
		{"bad CRC", edit(func(b []byte) []byte { b[6] ^= 1; return b }), "CRC"},
		{"three options", edit(func(b []byte) []byte {
			b[0] = 0x16
			return reframe(append(b[:20:20], append([]byte{0, 0, 0, 0}, b[20:]...)...))
		}), "2 options"},
		{"no options", edit(func(b []byte) []byte { b[0] = 0x13; return reframe(b) }), "2 options"},
		{"version 2", edit(func(b []byte) []byte { b[0] = 0x25; return reframe(b) }), "version"},
		{"too large", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[2:6], 1<<20+1)
			return reframe(b[:20])
		}), "1048577 bytes declared, limit 1048576"},
		{"4 GiB", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[2:6], 0xFFFFFFFF)
			return reframe(b[:20])
		}), "exceeds the maximum frame size"},
		{"method longer than payload", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[16:20], uint32(len(b)-20+1))
			return b
		}), "method name length"},
		{"truncated payload", good[:len(good)-2], "truncated"},
		{"truncated header", good[:15], "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := dialRaw(t, srv.Server)
			if _, err := nc.Write(tt.frame); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tt.name, "truncated") {
				_ = nc.(interface{ CloseWrite() error }).CloseWrite()
			}
			expectClosed(t, nc)
			waitFor(t, "the log line", func() bool { return strings.Contains(srv.log.String(), tt.log) })

			// Other connections are unaffected.
			other := dialRaw(t, srv.Server)
			if _, err := other.Write(good); err != nil {
				t.Fatal(err)
			}
			if r := readReply(t, other); r.flags != 0x80 {
				t.Fatalf("fresh connection: flags %#x body %q", r.flags, r.body)
			}
		})
	}
}

// gateStore blocks Has on the key "block" until open is closed, to force
// replies out of order.
type gateStore struct {
	drivers.Store
	blocked chan struct{}
	open    chan struct{}
}

func (g *gateStore) Has(ctx context.Context, keys []string) ([]string, error) {
	if len(keys) == 1 && keys[0] == "block" {
		close(g.blocked)
		select {
		case <-g.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Store.Has(ctx, keys)
}

func TestServer_OutOfOrder(t *testing.T) {
	g := &gateStore{Store: newMemory(t), blocked: make(chan struct{}), open: make(chan struct{})}
	srv := startServer(t, Config{}, nil, Storage{Name: "slow", Driver: redisDriver(), Store: g})
	c := dialClient(t, srv.Server)

	first := make(chan string, 1)
	go func() {
		_, e := call(t, c, "kv.Has", req("slow", "block"))
		first <- e
	}()
	<-g.blocked
	// The second call on the same connection completes while the first is
	// still blocked: its reply overtakes the first.
	mustCall(t, c, "kv.Set", &kvv1.Request{Storage: "slow", Items: []*kvv1.Item{item("x", "1", "")}})
	select {
	case e := <-first:
		t.Fatalf("first call returned before it was released: %q", e)
	default:
	}
	close(g.open)
	if e := <-first; e != "" {
		t.Fatalf("first call: %s", e)
	}
}

// TestServer_Pipelined writes many requests in one go and matches the
// replies by sequence id.
func TestServer_Pipelined(t *testing.T) {
	for _, inline := range []bool{true, false} {
		t.Run(fmt.Sprintf("inline=%v", inline), func(t *testing.T) {
			srv := startServer(t, Config{}, nil, Storage{Name: "default", Driver: memory.Driver(), Store: newMemory(t), Inline: inline})
			nc := dialRaw(t, srv.Server)
			const n = 300
			var batch []byte
			for i := range n {
				key := fmt.Sprintf("k%d", i)
				body := marshal(t, &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item(key, key, "")}})
				batch = append(batch, rawFrame(0x80, uint32(2*i), "kv.Set", body)...)
				batch = append(batch, rawFrame(0x80, uint32(2*i+1), "kv.Has", marshal(t, req("default", key)))...)
			}
			go func() { _, _ = nc.Write(batch) }()
			seen := make(map[uint32]bool)
			for range 2 * n {
				r := readReply(t, nc)
				if r.flags != 0x80 || seen[r.seq] {
					t.Fatalf("reply seq %d flags %#x body %q (dup %v)", r.seq, r.flags, r.body, seen[r.seq])
				}
				seen[r.seq] = true
			}
		})
	}
}

func TestServer_UnixSocket(t *testing.T) {
	srv := startServer(t, Config{Listen: unixListen(t)}, nil,
		Storage{Name: "default", Driver: memory.Driver(), Store: newMemory(t), Inline: true})
	if srv.Addr().Network() != "unix" {
		t.Fatalf("network %q", srv.Addr().Network())
	}
	c := dialClient(t, srv.Server)
	mustCall(t, c, "kv.Set", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("k", "v", "")}})
	out := mustCall(t, c, "kv.MGet", req("default", "k"))
	if len(out.GetItems()) != 1 || string(out.GetItems()[0].GetValue()) != "v" {
		t.Fatalf("MGet over unix socket = %v", out.GetItems())
	}
	if _, e := call(t, c, "kv.Nope", req("default")); e != "rpc: can't find method kv.Nope" {
		t.Fatalf("unknown method over unix socket: %q", e)
	}
}

func TestServer_StaleUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.sock")
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = old.Close() // leaves the socket file behind, as a crash would
	srv := startServer(t, Config{Listen: "unix://" + path}, nil,
		Storage{Name: "default", Driver: memory.Driver(), Store: newMemory(t), Inline: true})
	mustCall(t, dialClient(t, srv.Server), "kv.Has", req("default", "k"))

	// Anything but a socket in the way is not removed.
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Listen: "unix://" + file}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err == nil {
		t.Fatal("Listen over a regular file succeeded")
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Fatalf("regular file changed: %q, %v", b, err)
	}
}

func TestServer_ManyConnections(t *testing.T) {
	srv, _ := memoryServer(t)
	const conns = 200
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Go(func() {
			var d net.Dialer
			nc, err := d.DialContext(ctx, "tcp", srv.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer func() { _ = nc.Close() }()
			_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
			key := fmt.Sprintf("c%d", i)
			c := clientFor(nc)
			if err := c.Call("kv.Set", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item(key, key, "")}}, &kvv1.Response{}); err != nil {
				errs <- err
				return
			}
			out := &kvv1.Response{}
			if err := c.Call("kv.MGet", req("default", key), out); err != nil {
				errs <- err
				return
			}
			if len(out.Items) != 1 || string(out.Items[0].Value) != key {
				errs <- fmt.Errorf("conn %d: MGet = %v", i, out.Items)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
