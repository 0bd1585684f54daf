package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netrpc "net/rpc"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
	"github.com/roadrunner-server/goridge/v3/pkg/frame"
	goridgerpc "github.com/roadrunner-server/goridge/v3/pkg/rpc"

	"github.com/kvnode/kvnode/drivers/memory"
)

// benchConns is the number of client connections of the parallel benchmarks
// (the product goal is stated at 16).
const benchConns = 16

// netrpcKV serves the same kv logic the way RoadRunner's rpc plugin does:
// net/rpc with goridge's codec and reflection-dispatched methods. It is the
// baseline the direct frame server is measured against.
type netrpcKV struct{ s *Server }

func (k *netrpcKV) do(m method, in *kvv1.Request, out *kvv1.Response) error {
	r := &request{m: m, codec: frame.CodecProto}
	fromPB(in, r, k.s.storages)
	res, err := k.s.call(k.s.base, r)
	if err != nil {
		return err
	}
	out.Items = toPB(m, res).Items
	return nil
}

func (k *netrpcKV) Has(in *kvv1.Request, out *kvv1.Response) error  { return k.do(mHas, in, out) }
func (k *netrpcKV) Set(in *kvv1.Request, out *kvv1.Response) error  { return k.do(mSet, in, out) }
func (k *netrpcKV) MGet(in *kvv1.Request, out *kvv1.Response) error { return k.do(mMGet, in, out) }
func (k *netrpcKV) MExpire(in *kvv1.Request, out *kvv1.Response) error {
	return k.do(mMExpire, in, out)
}
func (k *netrpcKV) TTL(in *kvv1.Request, out *kvv1.Response) error    { return k.do(mTTL, in, out) }
func (k *netrpcKV) Delete(in *kvv1.Request, out *kvv1.Response) error { return k.do(mDelete, in, out) }
func (k *netrpcKV) Clear(in *kvv1.Request, out *kvv1.Response) error  { return k.do(mClear, in, out) }

// startNetRPC serves s's storages with net/rpc + goridge's codec on a
// loopback port and returns its address.
func startNetRPC(b *testing.B, s *Server) string {
	b.Helper()
	srv := netrpc.NewServer()
	if err := srv.RegisterName("kv", &netrpcKV{s: s}); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Go(func() { srv.ServeCodec(goridgerpc.NewCodec(nc)) })
		}
	})
	b.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, nc := range conns {
			_ = nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

type benchTarget struct {
	name string
	addr func(b *testing.B) string
}

func benchTargets() []benchTarget {
	direct := func(inline bool) func(b *testing.B) string {
		return func(b *testing.B) string {
			srv := startServerLogger(b, Config{}, nil, slog.New(slog.DiscardHandler),
				Storage{Name: "default", Driver: memory.Driver(), Store: newMemory(b), Inline: inline})
			return srv.Addr().String()
		}
	}
	targets := []benchTarget{
		{"kvnode-inline", direct(true)},
		{"kvnode-goroutine", direct(false)},
		{"netrpc-goridge", func(b *testing.B) string {
			s, err := New(Config{Listen: "tcp://127.0.0.1:0"}, []Storage{{Name: "default", Driver: memory.Driver(), Store: newMemory(b)}}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			return startNetRPC(b, s)
		}},
	}
	// KV_BENCH_ADDR adds a server running elsewhere, such as RoadRunner
	// itself (bench/rrserver with bench/rrserver/rr-memory.yaml), whose
	// storage must be named "default". Its CPU is not in cpu-ns/op.
	if addr := os.Getenv("KV_BENCH_ADDR"); addr != "" {
		targets = append(targets, benchTarget{"external", func(*testing.B) string { return addr }})
	}
	return targets
}

// runParallel runs fn on benchConns goroutines, each with its own
// connection, for b.N calls in total.
func runParallel(b *testing.B, addr string, fn func(c *netrpc.Client) error) {
	clients := make([]*netrpc.Client, benchConns)
	for i := range clients {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		clients[i] = clientFor(nc)
		b.Cleanup(func() { _ = clients[i].Close() })
	}
	var next atomic.Int32
	b.SetParallelism((benchConns + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	start := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := clients[int(next.Add(1)-1)%benchConns]
		for pb.Next() {
			if err := fn(c); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	// Wall time per op swings with whatever else runs on the machine; the
	// CPU time (client and server, user and system) spent per op does not,
	// and on a saturated machine throughput is cores / cpu-ns/op.
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time this process has used, user plus system, plus
// that of the external server KV_BENCH_PID if set.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) + externalCPU()
}

// externalCPU reads utime+stime of KV_BENCH_PID from /proc (clock ticks,
// assumed 100 Hz: use a -benchtime of a few seconds).
func externalCPU() time.Duration {
	pid := os.Getenv("KV_BENCH_PID")
	if pid == "" {
		return 0
	}
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func BenchmarkServer_SetParallel(b *testing.B) {
	for _, tgt := range benchTargets() {
		b.Run(tgt.name, func(b *testing.B) {
			addr := tgt.addr(b)
			var n atomic.Int64
			runParallel(b, addr, func(c *netrpc.Client) error {
				key := fmt.Sprintf("key-%d", n.Add(1)%1024)
				in := &kvv1.Request{Storage: "default", Items: []*kvv1.Item{{Key: key, Value: []byte("value-0123456789")}}}
				return c.Call("kv.Set", in, &kvv1.Response{})
			})
		})
	}
}

func BenchmarkServer_MGetParallel(b *testing.B) {
	for _, tgt := range benchTargets() {
		b.Run(tgt.name, func(b *testing.B) {
			addr := tgt.addr(b)
			seed := clientFor(mustDial(b, addr))
			for i := range 1024 {
				in := &kvv1.Request{Storage: "default", Items: []*kvv1.Item{{Key: fmt.Sprintf("key-%d", i), Value: []byte("value-0123456789")}}}
				if err := seed.Call("kv.Set", in, &kvv1.Response{}); err != nil {
					b.Fatal(err)
				}
			}
			_ = seed.Close()
			var n atomic.Int64
			runParallel(b, addr, func(c *netrpc.Client) error {
				out := &kvv1.Response{}
				if err := c.Call("kv.MGet", req("default", fmt.Sprintf("key-%d", n.Add(1)%1024)), out); err != nil {
					return err
				}
				if len(out.Items) != 1 {
					return errors.New("key missing")
				}
				return nil
			})
		})
	}
}

func mustDial(b *testing.B, addr string) net.Conn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	return nc
}

// BenchmarkCall measures the server side alone (decode, validate, Store,
// encode) without the network, to see where the time goes.
func BenchmarkCall(b *testing.B) {
	s, err := New(Config{Listen: "tcp://127.0.0.1:0"}, []Storage{{Name: "default", Driver: memory.Driver(), Store: newMemory(b), Inline: true}}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	body := marshal(b, &kvv1.Request{Storage: "default", Items: []*kvv1.Item{{Key: "key", Value: []byte("value-0123456789")}}})
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		r := getRequest()
		r.m, r.codec = mSet, frame.CodecProto
		if err := decodeBody(body, r, s.storages, DefaultMaxItems); err != nil {
			b.Fatal(err)
		}
		res, err := s.call(context.Background(), r)
		buf = s.appendReply(buf[:0], r, res, err)
		putRequest(r)
	}
}
