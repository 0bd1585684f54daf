package cluster

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/fsm"
	eventlog "github.com/kvnode/kvnode/log"
)

// openSolo starts a one-node cluster (it bootstraps alone) and waits until
// it leads.
func openSolo(t *testing.T, tune func(*Config), l *slog.Logger) (*Node, drivers.Engine) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := memory.New()
	cfg := Config{NodeID: "solo", DataDir: t.TempDir(), Raft: RaftConfig{
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
	}}
	if tune != nil {
		tune(&cfg)
	}
	n, err := Open(cfg, fsm.New(map[string]drivers.Engine{"mem": e}, l), Options{Listener: ln, Logger: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(); _ = e.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("solo node never led")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return n, e
}

// clientMux is a cluster port that only dials, with tp's certificate.
func clientMux(t *testing.T, tp *tlsPair) *forwardClients {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLogBook()
	m := newMux(ln, ln.Addr(), func(a string, d time.Duration) (net.Conn, error) { return net.DialTimeout("tcp", a, d) }, tp, muxLimits{}, l)
	fc := newForwardClients(m)
	t.Cleanup(func() { fc.closeAll(); _ = m.close() })
	return fc
}

func setEvent(key string) eventlog.Event {
	return eventlog.Event{Storage: "mem", Op: drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{{Key: key, Value: []byte("x")}}}}
}

func TestTLS_ForwardingNeedsACertificateFromTheClusterCA(t *testing.T) {
	certs := WriteTestCerts(t, t.TempDir())
	l, logs := NewLogBook()
	n, e := openSolo(t, func(c *Config) { c.TLS = certs.Good }, l)

	good, err := loadTLS(certs.Good)
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := loadTLS(certs.Rogue)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()

	// A member's certificate forwards a write.
	var reply ApplyReply
	if _, err := clientMux(t, good).call(ctx, n.Addr(), "Apply", ApplyArgs{Event: setEvent("good"), Timeout: time.Second}, &reply); err != nil || reply.Code != codeOK {
		t.Fatalf("forward with the cluster certificate: err %v, code %d %s", err, reply.Code, reply.Text)
	}

	// A certificate from another CA is refused before anything is sent:
	// the caller knows nothing was applied.
	reply = ApplyReply{}
	sent, err := clientMux(t, rogue).call(ctx, n.Addr(), "Apply", ApplyArgs{Event: setEvent("rogue"), Timeout: time.Second}, &reply)
	if err == nil || sent {
		t.Fatalf("rogue certificate: forward got through (sent %v, err %v, code %d)", sent, err, reply.Code)
	}
	// A node without TLS cannot tell a refusal from a lost reply (it sent
	// its request in the clear), but nothing reaches the leader either.
	reply = ApplyReply{}
	if _, err := clientMux(t, nil).call(ctx, n.Addr(), "Apply", ApplyArgs{Event: setEvent("plain"), Timeout: time.Second}, &reply); err == nil {
		t.Fatalf("plain TCP: forward got through (code %d)", reply.Code)
	}
	if line := logs.Find("refused cluster connection", "remote=127.0.0.1:"); line == "" {
		t.Fatal("the refused handshakes were not logged")
	}
	items, err := e.MGet(time.Now().UnixNano(), []string{"good", "rogue", "plain"})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Key != "good" {
		t.Fatalf("state after the refused writes: %v", items)
	}
}

func TestTLS_RefusalsAreRateLimitedPerHost(t *testing.T) {
	l := newLogLimiter(time.Hour)
	if _, ok := l.allow("10.0.0.1"); !ok {
		t.Fatal("first line held back")
	}
	for range 5 {
		if _, ok := l.allow("10.0.0.1"); ok {
			t.Fatal("repeat let through within the interval")
		}
	}
	if _, ok := l.allow("10.0.0.2"); !ok {
		t.Fatal("another host held back")
	}
	l.every = 0
	if n, ok := l.allow("10.0.0.1"); !ok || n != 5 {
		t.Fatalf("after the interval: ok %v, held %d (want 5)", ok, n)
	}
}

func TestTLS_LoadErrorsNameTheField(t *testing.T) {
	certs := WriteTestCerts(t, t.TempDir())
	for name, c := range map[string]TLSConfig{
		"tls.cert/key": {Cert: certs.Good.Cert, Key: certs.Rogue.Key, CA: certs.Good.CA},
		"tls.ca":       {Cert: certs.Good.Cert, Key: certs.Good.Key, CA: certs.Good.Key},
	} {
		_, err := loadTLS(c)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
