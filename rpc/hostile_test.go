package rpc

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memcached"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/internal/testsvc"
)

// Each test here is an attack from docs/security.md ("RPC port"), run
// against a real server over loopback, with a bound on what it may cost.

// allocatedDuring returns the bytes the whole process allocated while f ran
// (TotalAlloc only grows, so a GC in between cannot hide anything).
func allocatedDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// sendAndRead writes frame from another goroutine (the server may answer
// before it has read all of it) and returns the first reply and how long
// the server took to answer once the frame was sent: the transfer of a
// large frame over loopback on a busy machine is not the server's cost.
func sendAndRead(t *testing.T, nc net.Conn, frame []byte) (rawReply, time.Duration) {
	t.Helper()
	sent := make(chan time.Time, 1)
	go func() {
		_, err := nc.Write(frame)
		if err != nil {
			t.Errorf("write: %v", err)
		}
		sent <- time.Now()
	}()
	r := readReply(t, nc)
	answered := time.Now()
	return r, max(answered.Sub(<-sent), 0)
}

// protoItems is a kv.v1.Request of the storage and n items with the keys
// prefix+i (zero-padded to 7 digits), or empty items without a prefix;
// encoded by hand, so that building millions stays cheap.
func protoItems(storage string, n int, prefix string) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, storage)
	if prefix == "" {
		return append(b, bytes.Repeat([]byte{0x12, 0x00}, n)...)
	}
	klen := len(prefix) + 7
	item := []byte{0x12, byte(2 + klen), 0x0a, byte(klen)}
	item = append(item, prefix...)
	for i := range n {
		b = append(b, item...)
		for div := 1_000_000; div > 0; div /= 10 {
			b = append(b, byte('0'+i/div%10))
		}
	}
	return b
}

// Decode amplification: requests whose decoded items would cost many times
// their bytes are answered at once, for less than 4x the frame in
// allocations. Before the fix, the 32 MiB frame of empty items took 40 s
// and 3.3 GiB; 4 MiB of JSON {} items +430 MiB; 1M real keys +270 MiB.
func TestHostile_DecodeAmplification(t *testing.T) {
	srv, _ := memoryServer(t)
	const maxFrame = DefaultMaxFrameSize
	blank := protoItems("default", (maxFrame-64)/2, "")
	realKeys := protoItems("default", 1_000_000, "k")
	json := append([]byte(`{"storage":"default","items":[`), bytes.Repeat([]byte(`{},`), (4<<20)/3)...)
	json = append(json[:len(json)-1], "]}"...)

	for _, tt := range []struct {
		name   string
		flags  byte
		method string
		body   []byte
	}{
		{"32 MiB of empty proto items", 0x80, "kv.Has", blank},
		{"1M real keys", 0x80, "kv.MGet", realKeys},
		{"4 MiB of JSON {} items", 0x08, "kv.Has", json},
	} {
		t.Run(tt.name, func(t *testing.T) {
			frame := rawFrame(tt.flags, 7, tt.method, tt.body)
			nc := dialRaw(t, srv.Server)
			var r rawReply
			var elapsed time.Duration
			alloc := allocatedDuring(func() { r, elapsed = sendAndRead(t, nc, frame) })
			t.Logf("%d-byte frame: answered in %s, %d bytes allocated (%.1fx)", len(frame), elapsed, alloc,
				float64(alloc)/float64(len(frame)))
			if r.flags&0x40 == 0 || !strings.Contains(string(r.body), "too many items in one request: more than 100000 (rpc.max_items)") {
				t.Fatalf("reply flags %#x %.200q: want the too-many-items error", r.flags, r.body)
			}
			if elapsed > time.Second {
				t.Errorf("answered in %s, want within a second", elapsed)
			}
			if limit := 4 * uint64(len(frame)); alloc > limit {
				t.Errorf("%d bytes allocated, want less than 4x the frame (%d)", alloc, limit)
			}
			// The connection keeps serving.
			if r2, _ := sendAndRead(t, nc, rawFrame(0x80, 8, "kv.Has", marshal(t, req("default", "k")))); r2.seq != 8 || r2.flags != 0x80 {
				t.Fatalf("next call: seq %d flags %#x %q", r2.seq, r2.flags, r2.body)
			}
		})
	}
}

// MaxItems applies to every decoding path the same way, and a blank key
// stops decoding without changing which error RoadRunner's order gives.
func TestHostile_MaxItemsAndBlankKeys(t *testing.T) {
	st := newMemory(t)
	srv := startServer(t, Config{MaxItems: 3}, nil, Storage{Name: "default", Driver: memory.Driver(), Store: st, Inline: true})
	c := dialClient(t, srv.Server)

	if _, e := call(t, c, "kv.MGet", req("default", "a", "b", "c")); e != "" {
		t.Fatalf("3 items with max_items 3: %s", e)
	}
	want := "rpc_mget: too many items in one request: more than 3 (rpc.max_items)"
	if _, e := call(t, c, "kv.MGet", req("default", "a", "b", "c", "d")); e != want {
		t.Fatalf("4 items: %q, want %q", e, want)
	}
	// The protobuf runtime's path (an unknown field) and JSON count alike.
	slow := append(marshal(t, req("default", "a", "b", "c", "d")), protowire.AppendTag(nil, 9, protowire.VarintType)...)
	slow = protowire.AppendVarint(slow, 1)
	nc := dialRaw(t, srv.Server)
	for i, body := range [][]byte{slow, []byte(`{"storage":"default","items":[{"key":"a"},{"key":"b"},null,{"key":"d"}]}`)} {
		flags := byte(0x80)
		if i == 1 {
			flags = 0x08
		}
		if r, _ := sendAndRead(t, nc, rawFrame(flags, uint32(i), "kv.MGet", body)); string(r.body) != want {
			t.Fatalf("body %d: %q, want %q", i, r.body, want)
		}
	}

	// A blank key fails the call whatever follows it; earlier items are
	// still checked first, as RoadRunner's order has it.
	for _, tt := range []struct {
		method string
		in     *kvv1.Request
		want   string
	}{
		{"kv.Has", req("default", "a", " ", "c"), "rpc_has: key can't be empty string:\n\tin_memory_plugin_has"},
		{"kv.Set", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("a", "1", "bad"), item("", "2", "")}},
			`rpc_set: parsing time "bad" as "2006-01-02T15:04:05Z07:00": cannot parse "bad" as "2006"`},
		{"kv.Set", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("a", "1", ""), item("", "2", "bad")}},
			"rpc_set: key can't be empty string:\n\tin_memory_plugin_set"},
		{"kv.MExpire", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("a", "", "2030-01-01T00:00:00Z"), item("\t", "", "")}},
			"rpc_mexpire:\n\tin_memory_plugin_mexpire: timeout for MExpire is empty or key is empty"},
		{"kv.Has", req("ghost", ""), "rpc_has: no such storage: ghost"},
		{"kv.Clear", req("default", "", " "), ""},
	} {
		if _, e := call(t, c, tt.method, tt.in); e != tt.want {
			t.Errorf("%s %v: %q, want %q", tt.method, tt.in, e, tt.want)
		}
	}
	if keys, _ := st.Has(t.Context(), []string{"a"}); len(keys) != 0 {
		t.Fatal("a refused Set stored an item")
	}
}

// A pooled request drops an item array grown by a huge request: one 4 MiB
// request used to pin its arrays in the pool (167 MB for ten minutes).
func TestHostile_PoolDropsLargeArrays(t *testing.T) {
	r := &request{items: make([]drivers.Item, 0, 100_000)}
	r.reset()
	if cap(r.items) > maxPooledItems {
		t.Fatalf("reset kept an array of %d items, want at most %d", cap(r.items), maxPooledItems)
	}
	small := &request{items: make([]drivers.Item, 1, 16)}
	small.items[0] = drivers.Item{Key: "k", Value: []byte("v")}
	small.reset()
	if cap(small.items) != 16 || len(small.items) != 0 || small.items[:1][0].Key != "" {
		t.Fatalf("a small array is reused and cleared: cap %d len %d %+v", cap(small.items), len(small.items), small.items[:1])
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A client that sends MGets of a 1 MiB value and never reads its replies
// holds at most the reply backlog (and max_in_flight goroutines), and is
// cut off after the write timeout. Before the fix, two such connections held 514
// goroutines and +550 MiB, forever.
func TestHostile_ClientThatDoesNotRead(t *testing.T) {
	const backlog = 4 << 20
	st := newMemory(t)
	// Not inline, as in a cluster: every request gets its own goroutine.
	srv := startServer(t, Config{MaxReplyBacklog: backlog, WriteTimeout: time.Second}, nil,
		Storage{Name: "default", Driver: boltdb.Driver(), Store: st})
	c := dialClient(t, srv.Server)
	mustCall(t, c, "kv.Set", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{{Key: "big", Value: bytes.Repeat([]byte("v"), 1<<20)}}})

	baseHeap, baseG := heapInUse(), runtime.NumGoroutine()
	nc := dialRaw(t, srv.Server)
	frame := rawFrame(0x80, 1, "kv.MGet", marshal(t, req("default", "big")))
	go func() {
		for range 400 {
			if _, err := nc.Write(frame); err != nil {
				return
			}
		}
	}()
	var maxHeap uint64
	maxG := 0
	waitFor(t, "the server to drop the connection", func() bool {
		if h := heapInUse(); h > baseHeap {
			maxHeap = max(maxHeap, h-baseHeap)
		}
		maxG = max(maxG, runtime.NumGoroutine()-baseG)
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.conns) == 1 // only the client that reads
	})
	t.Logf("held at most %d bytes and %d goroutines", maxHeap, maxG)
	if slack := uint64(2 << 20); maxHeap > backlog+slack {
		t.Errorf("a connection that does not read held %d bytes, want at most the %d-byte backlog (+%d)", maxHeap, backlog, slack)
	}
	// Requests already read when the backlog filled wait for room without
	// their replies; max_in_flight bounds them.
	if maxG > DefaultMaxInFlight+16 {
		t.Errorf("a connection that does not read held %d goroutines", maxG)
	}
	waitFor(t, "the log line", func() bool { return strings.Contains(srv.log.String(), "reply not taken within write_timeout") })
	mustCall(t, c, "kv.Has", req("default", "big")) // the server is fine
}

// Slow-loris: frame_timeout is a deadline for the whole frame. Bytes
// trickling in used to re-arm it at every read, and a partial header had
// no deadline at all.
func TestHostile_SlowFrames(t *testing.T) {
	const frameTimeout = 500 * time.Millisecond
	srv := startServer(t, Config{FrameTimeout: frameTimeout}, nil,
		Storage{Name: "default", Driver: memory.Driver(), Store: newMemory(t), Inline: true})
	big := rawFrame(0x80, 1, "kv.Set", marshal(t, &kvv1.Request{Storage: "default",
		Items: []*kvv1.Item{{Key: "k", Value: bytes.Repeat([]byte("x"), 1<<20)}}}))
	for _, tt := range []struct {
		name string
		head []byte // sent at once
		rest []byte // then one byte every 50ms
	}{
		{"payload", big[:headerLen+64], big[headerLen+64:]},
		{"header", nil, big[:headerLen]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nc := dialRaw(t, srv.Server)
			closed := make(chan struct{})
			go func() {
				_, _ = io.Copy(io.Discard, nc)
				close(closed)
			}()
			start := time.Now()
			if _, err := nc.Write(tt.head); err != nil {
				t.Fatal(err)
			}
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-closed:
					if d := time.Since(start); d > 4*frameTimeout {
						t.Fatalf("closed after %s, want about %s", d, frameTimeout)
					}
					return
				case <-tick.C:
				}
				if i == len(tt.rest) || i == 100 {
					t.Fatalf("connection still open %s after the frame began (frame_timeout %s)", time.Since(start), frameTimeout)
				}
				if _, err := nc.Write(tt.rest[i : i+1]); err != nil {
					<-closed
					return
				}
			}
		})
	}
}

// Connections beyond max_connections are closed at once and logged.
func TestHostile_MaxConnections(t *testing.T) {
	srv := startServer(t, Config{MaxConnections: 3}, nil,
		Storage{Name: "default", Driver: memory.Driver(), Store: newMemory(t), Inline: true})
	held := make([]net.Conn, 3)
	for i := range held {
		held[i] = dialRaw(t, srv.Server)
	}
	waitFor(t, "3 connections", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.conns) == 3
	})
	expectClosed(t, dialRaw(t, srv.Server))
	waitFor(t, "the log line", func() bool {
		return strings.Contains(srv.log.String(), "max_connections reached") && strings.Contains(srv.log.String(), "max_connections=3")
	})
	_ = held[0].Close()
	waitFor(t, "a free slot", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.conns) == 2
	})
	mustCall(t, dialClient(t, srv.Server), "kv.Has", req("default", "k"))
}

// An unknown method name is repeated in the reply only up to 256 bytes:
// a 32 MiB name used to come back twice, as a 64 MiB reply.
func TestHostile_LongMethodName(t *testing.T) {
	srv, _ := memoryServer(t)
	nc := dialRaw(t, srv.Server)
	name := "kv." + strings.Repeat("N", 1<<20)
	r, _ := sendAndRead(t, nc, rawFrame(0x80, 3, name, nil))
	if n := len(r.method) + len(r.body); n > 1024 {
		t.Fatalf("a %d-byte method name got a %d-byte reply", len(name), n)
	}
	want := "rpc: can't find method kv." + strings.Repeat("N", maxEchoedName-3) + fmt.Sprintf("... (%d bytes)", len(name))
	if string(r.body) != want || r.seq != 3 {
		t.Fatalf("reply seq %d %q, want %q", r.seq, r.body, want)
	}
}

// A reply that does not fit a frame's 32-bit length is an error reply,
// and the stream stays in step. (The limit is lowered for the test: the
// real one is 4 GiB.)
func TestHostile_ReplyTooLarge(t *testing.T) {
	st := newMemory(t)
	s, err := New(Config{Listen: "tcp://127.0.0.1:0"}, []Storage{{Name: "default", Driver: memory.Driver(), Store: st, Inline: true}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.maxReply = 64 << 10
	go func() { _ = s.Serve() }()
	t.Cleanup(func() { _ = s.Shutdown(t.Context()) })
	waitFor(t, "listening", func() bool { return s.Addr() != nil })
	c := dialClient(t, s)
	v := bytes.Repeat([]byte("v"), 40<<10)
	mustCall(t, c, "kv.Set", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{{Key: "a", Value: v}, {Key: "b", Value: v}}})
	_, e := call(t, c, "kv.MGet", req("default", "a", "b"))
	if !strings.HasPrefix(e, "kv.MGet: reply too large for one frame: ") {
		t.Fatalf("MGet of 80 KiB with a 64 KiB limit: %q", e)
	}
	if got := mustCall(t, c, "kv.MGet", req("default", "a")); len(got.Items) != 1 || !bytes.Equal(got.Items[0].Value, v) {
		t.Fatalf("next call: %d items", len(got.Items))
	}
}

// A timeout after 2262 does not fit Unix nanoseconds: it is clamped to the
// largest deadline, not wrapped into the past (Set used to answer OK with
// the key already gone), and kv.TTL still echoes it as sent.
func TestHostile_FarFutureTimeout(t *testing.T) {
	srv, _ := memoryServer(t)
	c := dialClient(t, srv.Server)
	const far = "9999-12-31T00:00:00Z"
	mustCall(t, c, "kv.Set", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("k", "v", far)}})
	if got := mustCall(t, c, "kv.Has", req("default", "k")); len(got.Items) != 1 {
		t.Fatal("a key set to expire in 9999 is already gone")
	}
	if got := mustCall(t, c, "kv.TTL", req("default", "k")); len(got.Items) != 1 || got.Items[0].Timeout != far {
		t.Fatalf("TTL = %v, want %s", got.Items, far)
	}
}

// kv.TTL on memcached fails whatever the keys, as RoadRunner's driver does;
// an empty key list used to answer success.
func TestHostile_MemcachedTTLWithoutKeys(t *testing.T) {
	mc, err := memcached.New(memcached.Config{Addr: memcached.Addrs{testsvc.Memcached(t)}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Close() })
	srv := startServer(t, Config{}, nil, Storage{Name: "mc", Driver: memcached.Driver(), Store: mc})
	c := dialClient(t, srv.Server)
	const want = "rpc_ttl:\n\tmemcached_plugin_ttl: not valid request for memcached, see https://github.com/memcached/memcached/issues/239"
	for _, in := range []*kvv1.Request{req("mc"), req("mc", "a"), req("mc", "")} {
		if _, e := call(t, c, "kv.TTL", in); e != want {
			t.Errorf("TTL %v: %q, want %q", in.Items, e, want)
		}
	}
	if _, e := call(t, c, "kv.TTL", req("", "a")); e != "rpc_ttl: no storage provided" {
		t.Errorf("TTL without a storage: %q", e)
	}
}

// A unix RPC socket is 0660 whatever the umask (it followed the umask:
// 0777 under umask 000).
func TestHostile_UnixSocketMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	listen := unixListen(t)
	srv := startServer(t, Config{Listen: listen}, nil, Storage{Name: "default", Driver: memory.Driver(), Store: newMemory(t), Inline: true})
	fi, err := os.Stat(strings.TrimPrefix(listen, "unix://"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o660 {
		t.Fatalf("socket mode %#o, want 0660", mode)
	}
	mustCall(t, dialClient(t, srv.Server), "kv.Has", req("default", "k"))
}

func TestEchoName(t *testing.T) {
	if got := echoName([]byte("kv.Nope")); got != "kv.Nope" {
		t.Fatal(got)
	}
	long := bytes.Repeat([]byte("x"), maxEchoedName+1)
	if got := echoName(long); !strings.HasSuffix(got, fmt.Sprintf("... (%d bytes)", len(long))) || len(got) > maxEchoedName+32 {
		t.Fatal(got)
	}
}
