package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"sync/atomic"
	"testing"
	"time"

	eventlog "github.com/kvnode/kvnode/log"
)

// proposeOne forwards ev alone, as a follower's Propose.
func proposeOne(ctx context.Context, pc *peerClients, addr string, ev eventlog.Event) (Result, bool, error) {
	raw, err := eventlog.Encode(ev)
	if err != nil {
		return Result{}, false, err
	}
	reply, sent, err := pc.propose(ctx, addr, ProposeArgs{Events: [][]byte{raw}, Timeout: time.Second})
	if err == nil && len(reply.Results) != 1 {
		err = fmt.Errorf("%d results for one event", len(reply.Results))
	}
	if err != nil {
		return Result{}, sent, err
	}
	return reply.Results[0], sent, nil
}

// dialingMux is a cluster port that only dials, through dial.
func dialingMux(t *testing.T, dial func(string, time.Duration) (net.Conn, error)) *peerClients {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLogBook()
	m := newMux(ln, ln.Addr(), "", dial, nil, muxLimits{}, l)
	fc := newPeerClients(m)
	t.Cleanup(func() { fc.closeAll(); _ = m.close() })
	return fc
}

// A dial to an unreachable address (an old leader) must not hold up calls
// to a healthy one: the dial happens outside the lock every call takes.
func TestForward_SlowDialDoesNotBlockOtherAddresses(t *testing.T) {
	n, _ := openSolo(t, nil, nil)
	const unreachable = "old-leader.invalid:7000" // never dialled for real
	release, entered := make(chan struct{}), make(chan struct{})
	fc := dialingMux(t, func(addr string, d time.Duration) (net.Conn, error) {
		if addr == unreachable {
			close(entered)
			select {
			case <-release:
			case <-time.After(d):
			}
			return nil, errors.New("unreachable")
		}
		return net.DialTimeout("tcp", addr, d)
	})
	defer close(release)

	stuck := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var reply PingReply
		_, err := fc.call(ctx, unreachable, "Ping", PingArgs{}, &reply)
		stuck <- err
	}()
	<-entered

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	var reply PingReply
	if _, err := fc.call(ctx, n.Addr(), "Ping", PingArgs{}, &reply); err != nil {
		t.Fatalf("call to the healthy leader while another dial hangs: %v", err)
	}
	if reply.ID != "solo" {
		t.Fatalf("Ping answered %q", reply.ID)
	}
	select {
	case err := <-stuck:
		t.Fatalf("the unreachable dial returned early: %v", err)
	default:
	}
}

// silentPeer accepts cluster connections, reads everything, answers
// nothing, and counts the bytes it received.
func silentPeer(t *testing.T) (addr string, received *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	received = &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }() // the stand-in server's side
				buf := make([]byte, 4096)
				for {
					k, err := c.Read(buf)
					received.Add(int64(k))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), received
}

// eofOnClose reads io.EOF once closed, as a connection whose peer closed
// at the same moment does: net/rpc then fails pending calls with
// ErrShutdown rather than the read error.
type eofOnClose struct {
	net.Conn
	closed atomic.Bool
}

func (c *eofOnClose) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	if err != nil && c.closed.Load() {
		return k, io.EOF
	}
	return k, err // unwrapped: readers compare io.EOF with ==
}

func (c *eofOnClose) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// net/rpc answers ErrShutdown also for a call already sent when the client
// is closed under it: such a write may have been applied, so it must not be
// reported as "not sent" (which turns into a retry or "no leader").
func TestForward_ShutdownOfAPendingCallIsNotNotSent(t *testing.T) {
	addr, received := silentPeer(t)
	fc := dialingMux(t, func(a string, d time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout("tcp", a, d)
		if err != nil {
			return nil, err
		}
		return &eofOnClose{Conn: c}, nil
	})

	type result struct {
		sent bool
		err  error
	}
	pending := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, sent, err := proposeOne(ctx, fc, addr, setEvent("k"))
		pending <- result{sent, err}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for received.Load() < 20 { // the protocol byte and the gob request
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the peer")
		}
		time.Sleep(time.Millisecond)
	}
	fc.closeAll() // as when the node stops, or another call's failure drops the client

	r := <-pending
	if !errors.Is(r.err, rpc.ErrShutdown) {
		t.Fatalf("pending call failed with %v, want net/rpc's ErrShutdown", r.err)
	}
	if !r.sent {
		t.Fatalf("a call the peer received was reported not sent (err %v)", r.err)
	}

	// After the close, nothing leaves: that one is "not sent".
	_, sent, err := proposeOne(t.Context(), fc, addr, setEvent("k2"))
	if err == nil || sent {
		t.Fatalf("call after close: sent=%v err=%v, want not sent", sent, err)
	}
}
