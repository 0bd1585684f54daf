package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	netrpc "net/rpc"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
	goridgerpc "github.com/roadrunner-server/goridge/v3/pkg/rpc"
	"go.opentelemetry.io/otel/trace"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
)

// testLog collects the server's log lines so tests can assert on them, and
// mirrors them to t.Log while the test runs.
type testLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	t     testing.TB
	ended bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.ended {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newTestLog(t testing.TB) (*testLog, *slog.Logger) {
	l := &testLog{t: t}
	t.Cleanup(func() {
		l.mu.Lock()
		l.ended = true
		l.mu.Unlock()
	})
	return l, slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newMemory returns a real single-node memory storage.
func newMemory(t testing.TB) *drivers.Standalone {
	t.Helper()
	st := drivers.NewStandalone(memory.New(), drivers.StandaloneOptions{Driver: "memory", SweepInterval: -1})
	t.Cleanup(func() { _ = st.Close() })
	return st
}

type testServer struct {
	*Server
	log *testLog
}

// startServer serves storages on cfg.Listen (127.0.0.1:0 when empty) until
// the test ends.
func startServer(t testing.TB, cfg Config, tp trace.TracerProvider, storages ...Storage) *testServer {
	t.Helper()
	tl, logger := newTestLog(t)
	s := startServerLogger(t, cfg, tp, logger, storages...)
	return &testServer{Server: s, log: tl}
}

func startServerLogger(t testing.TB, cfg Config, tp trace.TracerProvider, logger *slog.Logger, storages ...Storage) *Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "tcp://127.0.0.1:0"
	}
	s, err := New(cfg, storages, tp, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// memoryServer serves one memory storage named "default".
func memoryServer(t testing.TB) (*testServer, *drivers.Standalone) {
	st := newMemory(t)
	return startServer(t, Config{}, nil, Storage{Name: "default", Driver: memory.Driver(), Store: st, Inline: true}), st
}

func dialRaw(t testing.TB, s *Server) net.Conn {
	t.Helper()
	a := s.Addr()
	nc, err := net.DialTimeout(a.Network(), a.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return nc
}

// dialClient connects the way Go users of RoadRunner do: net/rpc with
// goridge's client codec.
func dialClient(t testing.TB, s *Server) *netrpc.Client {
	t.Helper()
	c := netrpc.NewClientWithCodec(goridgerpc.NewClientCodec(dialRaw(t, s)))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func req(storage string, keys ...string) *kvv1.Request {
	r := &kvv1.Request{Storage: storage}
	for _, k := range keys {
		r.Items = append(r.Items, &kvv1.Item{Key: k})
	}
	return r
}

func item(key, value, timeout string) *kvv1.Item {
	return &kvv1.Item{Key: key, Value: []byte(value), Timeout: timeout}
}

// call makes one call and returns the response and the server's error text
// ("" on success).
func call(t testing.TB, c *netrpc.Client, method string, in *kvv1.Request) (*kvv1.Response, string) {
	t.Helper()
	out := &kvv1.Response{}
	err := c.Call(method, in, out)
	if err == nil {
		return out, ""
	}
	var se netrpc.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("%s: transport error: %v", method, err)
	}
	return out, string(se)
}

func mustCall(t testing.TB, c *netrpc.Client, method string, in *kvv1.Request) *kvv1.Response {
	t.Helper()
	out, e := call(t, c, method, in)
	if e != "" {
		t.Fatalf("%s: %s", method, e)
	}
	return out
}

// rawFrame builds a request frame exactly as goridge's client does.
func rawFrame(flags byte, seq uint32, method string, body []byte) []byte {
	payload := append([]byte(method), body...)
	b := make([]byte, headerLen, headerLen+len(payload))
	b[0] = 0x15
	b[1] = flags
	binary.LittleEndian.PutUint32(b[2:6], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[6:10], crc32.ChecksumIEEE(b[:6]))
	binary.LittleEndian.PutUint32(b[12:16], seq)
	binary.LittleEndian.PutUint32(b[16:20], uint32(len(method)))
	return append(b, payload...)
}

// reframe fixes the CRC after a test edited header bytes 0-5.
func reframe(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[6:10], crc32.ChecksumIEEE(b[:6]))
	return b
}

type rawReply struct {
	hdr     []byte
	flags   byte
	seq     uint32
	method  string
	body    []byte
	options int
}

// readReply reads one reply frame and checks its shape.
func readReply(t testing.TB, nc net.Conn) rawReply {
	t.Helper()
	hdr := make([]byte, headerLen)
	if _, err := io.ReadFull(nc, hdr); err != nil {
		t.Fatalf("read reply header: %v", err)
	}
	if hdr[0] != 0x15 {
		t.Fatalf("reply byte 0 = %#x, want 0x15 (version 1, 5 header words = 2 options)", hdr[0])
	}
	if crc32.ChecksumIEEE(hdr[:6]) != binary.LittleEndian.Uint32(hdr[6:10]) {
		t.Fatalf("reply CRC mismatch: % x", hdr)
	}
	if hdr[10] != 0 || hdr[11] != 0 {
		t.Fatalf("reply stream/reserved bytes = % x, want 0", hdr[10:12])
	}
	payload := make([]byte, binary.LittleEndian.Uint32(hdr[2:6]))
	if _, err := io.ReadFull(nc, payload); err != nil {
		t.Fatalf("read reply payload: %v", err)
	}
	mlen := binary.LittleEndian.Uint32(hdr[16:20])
	return rawReply{
		hdr: hdr, flags: hdr[1], seq: binary.LittleEndian.Uint32(hdr[12:16]),
		method: string(payload[:mlen]), body: payload[mlen:], options: int(hdr[0]&0x0F) - 3,
	}
}

// expectClosed asserts the server closes nc without sending anything.
func expectClosed(t testing.TB, nc net.Conn) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, nc)
	if n != 0 {
		t.Fatalf("server sent %d bytes before closing", n)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after 10s")
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func unixListen(t testing.TB) string {
	return "unix://" + filepath.Join(t.TempDir(), "kv.sock")
}

func clientFor(nc net.Conn) *netrpc.Client {
	return netrpc.NewClientWithCodec(goridgerpc.NewClientCodec(nc))
}

// forEachNetwork runs f once over TCP and once over a unix socket, with the
// Listen DSN to use.
func forEachNetwork(t *testing.T, f func(t *testing.T, listen string)) {
	t.Run("tcp", func(t *testing.T) { f(t, "tcp://127.0.0.1:0") })
	t.Run("unix", func(t *testing.T) { f(t, unixListen(t)) })
}

// redisDriver describes a pass-through driver as the redis one does, for
// the error texts: the rpc tests need its description, not a redis client
// (nor go-redis in the test build of every module that imports rpc).
func redisDriver() drivers.Driver { return drivers.Driver{Name: "redis", ErrorOp: "redis_driver_"} }
