package cluster

import (
	"context"
	"errors"
	"net"
	"net/rpc"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// strangers opens n connections to addr from the loopback address from
// and writes payload on each; connections the node refuses at once may
// fail to write, which is fine.
func strangers(t *testing.T, addr, from string, n int, payload []byte) []net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
		_, _ = c.Write(payload)
	}
	return conns
}

// waitClosedByPeer fails unless the node has closed every connection by
// deadline: a read returns EOF or a reset, not a timeout.
func waitClosedByPeer(t *testing.T, conns []net.Conn, deadline time.Time) {
	t.Helper()
	var b [64]byte
	for i, c := range conns {
		_ = c.SetReadDeadline(deadline)
		for {
			_, err := c.Read(b[:])
			if err == nil {
				continue // the TLS accept byte or a stray reply: keep reading
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("connection %d of %d still open at the deadline", i, len(conns))
			}
			break
		}
	}
}

// Strangers that name a protocol and then say nothing used to be handed to
// raft (which allocates a 256 KiB read buffer per connection at once) or to
// the forwarding server, without any deadline: 1,000 of them held 269 MiB
// for good. Now a connection must send its first request within the header
// timeout, and nothing is handed over before it does. (The connection caps
// are lifted here: this is about what each connection costs.)
func TestMux_SilentConnectionsAreClosedAndCheap(t *testing.T) {
	l, _ := NewLogBook()
	n, _ := openSolo(t, func(c *Config) { c.MaxConnections, c.MaxConnectionsPerHost = 2000, 2000 }, l)
	before := heapInUse()
	start := time.Now()
	// The raft ones know the node's incarnation (gossip metadata tells it),
	// so they get past the identity check (identity.go).
	raftHello := append([]byte{protoRaftID, byte(len(n.Incarnation()))}, n.Incarnation()...)
	conns := strangers(t, DialAddr(n.Addr()), "127.0.0.1", 500, raftHello)
	conns = append(conns, strangers(t, DialAddr(n.Addr()), "127.0.0.1", 500, []byte{protoForward})...)

	// The heap stays small while they are held (sampled for a second,
	// which is ample time for the node to accept and route them all).
	var peak uint64
	for range 10 {
		peak = max(peak, heapInUse())
		time.Sleep(100 * time.Millisecond)
	}
	const budget = 16 << 20
	grew := int64(peak) - int64(before)
	if grew > budget {
		t.Errorf("1,000 silent connections grew the heap by %d MiB (budget %d MiB)", grew>>20, budget>>20)
	}
	if held, _ := n.mux.slots.count(""); held != len(conns) {
		t.Errorf("%d connections held, want all %d (the caps are lifted)", held, len(conns))
	}
	waitClosedByPeer(t, conns, start.Add(headerTimeout+5*time.Second))
	t.Logf("heap grew by at most %.1f MiB; all closed after %s", float64(grew)/(1<<20), time.Since(start).Round(100*time.Millisecond))
}

// A stranger speaking another protocol is refused and logged once per
// host per interval, however often it tries.
func TestMux_UnknownProtocolIsLoggedRateLimited(t *testing.T) {
	l, logs := NewLogBook()
	n, _ := openSolo(t, nil, l)
	conns := strangers(t, DialAddr(n.Addr()), "127.0.0.1", 50, []byte("GET / HTTP/1.1\r\n\r\n"))
	waitClosedByPeer(t, conns, time.Now().Add(5*time.Second))
	if got := countLines(logs, "refusing cluster connection with unknown protocol"); got != 1 {
		t.Fatalf("%d log lines for 50 refusals from one host, want 1", got)
	}
}

// A host that fills its share of the port is refused at once (and logged,
// rate-limited) without locking other hosts out; the port's total cap
// holds too; and closing connections gives their slots back.
func TestMux_ConnectionCapsRefuseAtOnceAndSpareOtherHosts(t *testing.T) {
	l, logs := NewLogBook()
	n, _ := openSolo(t, func(c *Config) { c.MaxConnections, c.MaxConnectionsPerHost = 20, 10 }, l)
	// A forwarding request begun and never finished: past the header
	// timeout, so these hold their slots for the forwarding idle timeout.
	begun := []byte{protoForward, 0x10}
	// closedByNode polls until want of conns have been closed by the node
	// (the refused ones, closed right after accept), and returns how many.
	closedByNode := func(conns []net.Conn, want int) int {
		closed := make([]bool, len(conns))
		n := 0
		for deadline := time.Now().Add(5 * time.Second); n < want && time.Now().Before(deadline); {
			for i, c := range conns {
				if closed[i] {
					continue
				}
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
				var b [1]byte
				if _, err := c.Read(b[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					closed[i] = true
					n++
				}
			}
		}
		return n
	}
	pollSlots := func(what string, host string, wantTotal, wantHost int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			total, fromHost := n.mux.slots.count(host)
			if total == wantTotal && fromHost == wantHost {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d connections held, %d from %s (want %d, %d)", what, total, fromHost, host, wantTotal, wantHost)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	one := strangers(t, DialAddr(n.Addr()), "127.0.0.1", 15, begun)
	pollSlots("one host over its cap", "127.0.0.1", 10, 10)
	if got := closedByNode(one, 5); got != 5 {
		t.Fatalf("%d of 15 connections from one host closed at once, want the 5 over its cap", got)
	}
	if logs.Find("refusing cluster connection: cluster.max_connections_per_host (10) reached", "remote=127.0.0.1:") == "" {
		t.Fatal("the per-host refusal was not logged")
	}

	// A member on another host still forwards.
	tp := clientMuxFrom(t, "127.0.0.2")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if reply, _, err := proposeOne(ctx, tp, n.Addr(), setEvent("k")); err != nil || reply.Code != codeOK {
		t.Fatalf("forward from another host while one host is at its cap: %v (code %d)", err, reply.Code)
	}

	three := strangers(t, DialAddr(n.Addr()), "127.0.0.3", 12, begun)
	pollSlots("the port at its total cap", "127.0.0.3", 20, 9)
	if got := closedByNode(three, 3); got != 3 {
		t.Fatalf("%d of 12 connections closed at once, want the 3 over the total cap", got)
	}
	if logs.Find("refusing cluster connection: cluster.max_connections (20) reached") == "" {
		t.Fatal("the total refusal was not logged")
	}
	if lines := countLines(logs, "cluster.max_connections (20) reached"); lines != 1 {
		t.Fatalf("%d log lines for 3 refusals from one host within 10s, want 1", lines)
	}

	for _, c := range one {
		_ = c.Close()
	}
	pollSlots("after one host closed its connections", "127.0.0.1", 10, 0)
}

// clientMuxFrom is clientMux dialling from a given loopback address.
func clientMuxFrom(t *testing.T, from string) *peerClients {
	t.Helper()
	ln, err := net.Listen("tcp", from+":0")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLogBook()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	m := newMux(ln, ln.Addr(), "", func(a string, timeout time.Duration) (net.Conn, error) {
		d := d
		d.Timeout = timeout
		return d.Dial("tcp", a)
	}, nil, muxLimits{}, l)
	fc := newPeerClients(m)
	t.Cleanup(func() { fc.closeAll(); _ = m.close() })
	return fc
}

// countLines counts the logged lines holding fragment.
func countLines(b *LogBook, fragment string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, l := range b.lines {
		if strings.Contains(l, fragment) {
			n++
		}
	}
	return n
}

// pingService is a forwarding service for tests of the port alone.
type pingService struct{}

func (pingService) Ping(_ PingArgs, reply *PingReply) error { reply.ID = "server"; return nil }

// forwardPort starts a cluster port with limits serving pingService as the
// forwarding service; it returns its address and its mux.
func forwardPort(t *testing.T, limits muxLimits) (string, *mux) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLogBook()
	m := newMux(ln, ln.Addr(), "", nil, nil, limits, l)
	srv := rpc.NewServer()
	if err := srv.RegisterName(peerService, pingService{}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := m.forward.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(c)
		}
	}()
	t.Cleanup(func() { _ = m.close() })
	return ln.Addr().String(), m
}

// A forwarding connection that has started a request and then says nothing
// is closed after the forwarding idle timeout; the listener's slot is free
// again.
func TestMux_IdleForwardingConnectionIsClosed(t *testing.T) {
	addr, m := forwardPort(t, muxLimits{forwardIdle: 300 * time.Millisecond})
	start := time.Now()
	conns := strangers(t, addr, "127.0.0.1", 3, []byte{protoForward, 0x10})
	waitClosedByPeer(t, conns, start.Add(5*time.Second))
	deadline := time.Now().Add(5 * time.Second)
	for total, _ := m.slots.count(""); total != 0; total, _ = m.slots.count("") {
		if time.Now().After(deadline) {
			t.Fatalf("%d slots still held after the connections closed", total)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The dialer retires a forwarding connection idle for half the listener's
// idle timeout: the request is refused before a byte is sent, as
// rpc.ErrShutdown, which the forwarding client reports as not sent (the
// caller retries on a new connection), and the next call works.
func TestMux_DialerRetiresIdleForwardingConnection(t *testing.T) {
	addr, _ := forwardPort(t, muxLimits{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLogBook()
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	m := newMux(ln, ln.Addr(), "", func(a string, d time.Duration) (net.Conn, error) { return net.DialTimeout("tcp", a, d) },
		nil, muxLimits{now: clock}, l)
	fc := newPeerClients(m)
	t.Cleanup(func() { fc.closeAll(); _ = m.close() })

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var reply PingReply
	if _, err := fc.call(ctx, addr, "Ping", PingArgs{}, &reply); err != nil || reply.ID != "server" {
		t.Fatalf("first call: %v, %+v", err, reply)
	}
	// Age the connection: its last write is now longer ago than the limit.
	skew.Store(int64(forwardIdleTimeout))

	sent, err := fc.call(ctx, addr, "Ping", PingArgs{}, &reply)
	if sent || !errors.Is(err, rpc.ErrShutdown) {
		t.Fatalf("call on an idle connection: sent %v, err %v (want not sent, rpc.ErrShutdown)", sent, err)
	}
	reply = PingReply{}
	if _, err := fc.call(ctx, addr, "Ping", PingArgs{}, &reply); err != nil || reply.ID != "server" {
		t.Fatalf("call after the retirement: %v, %+v", err, reply)
	}
}
