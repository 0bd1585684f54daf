package cluster

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/fsm"
	"github.com/kvnode/kvnode/internal/pki"
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
func clientMux(t *testing.T, tp *tlsPair) *peerClients {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLogBook()
	m := newMux(ln, ln.Addr(), "", func(a string, d time.Duration) (net.Conn, error) { return net.DialTimeout("tcp", a, d) }, tp, muxLimits{}, l)
	fc := newPeerClients(m)
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
	reply, _, err := proposeOne(ctx, clientMux(t, good), n.Addr(), setEvent("good"))
	if err != nil || reply.Code != codeOK {
		t.Fatalf("forward with the cluster certificate: err %v, code %d %s", err, reply.Code, reply.Text)
	}

	// A certificate from another CA is refused before anything is sent:
	// the caller knows nothing was applied.
	reply, sent, err := proposeOne(ctx, clientMux(t, rogue), n.Addr(), setEvent("rogue"))
	if err == nil || sent {
		t.Fatalf("rogue certificate: forward got through (sent %v, err %v, code %d)", sent, err, reply.Code)
	}
	// A node without TLS cannot tell a refusal from a lost reply (it sent
	// its request in the clear), but nothing reaches the leader either.
	if reply, _, err := proposeOne(ctx, clientMux(t, nil), n.Addr(), setEvent("plain")); err == nil {
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

// writePKI writes a CA and a node certificate made by internal/pki (what
// kvnode tls writes), the node's valid for certValidity.
func writePKI(t *testing.T, certValidity time.Duration) TLSConfig {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caPair, err := pki.NewCA(365*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(caPair.Cert, caPair.Key)
	if err != nil {
		t.Fatal(err)
	}
	node, err := ca.Issue("n", nil, certValidity, now)
	if err != nil {
		t.Fatal(err)
	}
	c := TLSConfig{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "n.pem"), Key: filepath.Join(dir, "n-key.pem")}
	for f, b := range map[string][]byte{c.CA: caPair.Cert, c.Cert: node.Cert, c.Key: node.Key} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// At start a node says when its own certificate will be refused by its
// peers (another CA) or soon will be (expiry), and how to create missing
// files.
func TestTLS_StartChecksTheNodesOwnCertificate(t *testing.T) {
	check := func(c TLSConfig) string {
		t.Helper()
		tp, err := loadTLS(c)
		if err != nil {
			t.Fatal(err)
		}
		l, logs := NewLogBook()
		tp.checkOwn(l, time.Now())
		logs.mu.Lock()
		defer logs.mu.Unlock()
		return strings.Join(logs.lines, "\n")
	}
	if got := check(writePKI(t, 365*24*time.Hour)); got != "" {
		t.Errorf("a good certificate: %s", got)
	}
	if got := check(writePKI(t, 10*24*time.Hour)); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "expires soon") {
		t.Errorf("a certificate expiring in 10 days: %q", got)
	}
	if got := check(WriteTestCerts(t, t.TempDir()).Rogue); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "does not verify against cluster.tls.ca") {
		t.Errorf("a certificate from another CA: %q", got)
	}
	c := writePKI(t, time.Hour)
	c.Cert = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := loadTLS(c); err == nil || !strings.Contains(err.Error(), "kvnode tls cert NODE") {
		t.Errorf("a missing certificate: %v", err)
	}
}

// Removing a member goes over the cluster port, so it takes the same
// certificate as raft: without one (plain TCP) or with one from another CA
// the call never reaches the leader; with the cluster's it removes.
func TestTLS_RemovingAMemberNeedsACertificateFromTheClusterCA(t *testing.T) {
	certs := WriteTestCerts(t, t.TempDir())
	l, _ := NewLogBook()
	var lns [2]net.Listener
	var peers []Peer
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		peers = append(peers, Peer{ID: []string{"a", "b"}[i], Address: ln.Addr().String()})
	}
	var nodes [2]*Node
	for i, ln := range lns {
		e := memory.New()
		cfg := Config{NodeID: peers[i].ID, DataDir: t.TempDir(), Peers: peers, TLS: certs.Good, Raft: RaftConfig{
			HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		}}
		n, err := Open(cfg, fsm.New(map[string]drivers.Engine{"mem": e}, l), Options{Listener: ln, Logger: l})
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		t.Cleanup(func() { _ = n.Close(); _ = e.Close() })
	}
	var leader, other *Node
	for deadline := time.Now().Add(10 * time.Second); leader == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		for i, n := range nodes {
			if n.IsLeader() {
				leader, other = n, nodes[1-i]
			}
		}
	}
	members := func() int {
		f := leader.Raft().GetConfiguration()
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
		return len(f.Configuration().Servers)
	}
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
	args := RemoveArgs{ID: other.ID(), Timeout: time.Second}
	for name, tp := range map[string]*tlsPair{"plain TCP": nil, "another CA": rogue} {
		if reply, err := clientMux(t, tp).remove(ctx, leader.Addr(), args); err == nil {
			t.Errorf("%s: Cluster.Remove got through (code %d %s)", name, reply.Code, reply.Text)
		}
	}
	if n := members(); n != 2 {
		t.Fatalf("%d members after the refused removals, want 2", n)
	}
	if reply, err := clientMux(t, good).remove(ctx, leader.Addr(), args); err != nil || reply.Code != codeOK {
		t.Fatalf("Cluster.Remove with the cluster's certificate: %v (code %d %s)", err, reply.Code, reply.Text)
	}
	if n := members(); n != 1 {
		t.Fatalf("%d members after the removal, want 1", n)
	}
}

// The raft attack of issue 10: an AppendEntries with the next term and a
// garbage entry, which a node without TLS accepted (following the
// intruder, then stopping on the entry). With TLS it needs the cluster's
// certificate: plain TCP and another CA's certificate never reach raft,
// and the node keeps its term and leadership.
func TestTLS_RaftNeedsACertificateFromTheClusterCA(t *testing.T) {
	certs := WriteTestCerts(t, t.TempDir())
	l, _ := NewLogBook()
	n, _ := openSolo(t, func(c *Config) { c.TLS = certs.Good }, l)
	term, last := n.Raft().CurrentTerm(), n.Raft().LastIndex()
	transport := func(tp *tlsPair) *raft.NetworkTransport {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		m := newMux(ln, ln.Addr(), "", func(a string, d time.Duration) (net.Conn, error) { return net.DialTimeout("tcp", a, d) }, tp, muxLimits{}, l)
		tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: m.raft, MaxPool: 1, Timeout: 2 * time.Second})
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	appendTo := func(tr *raft.NetworkTransport, req *raft.AppendEntriesRequest) (raft.AppendEntriesResponse, error) {
		var resp raft.AppendEntriesResponse
		err := tr.AppendEntries(raft.ServerID(n.ID()), raft.ServerAddress(n.Addr()), req, &resp)
		return resp, err
	}
	intruder := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte("127.0.0.1:1")}

	// The cluster's certificate reaches raft: a stale heartbeat is
	// answered (and refused by raft itself).
	good, err := loadTLS(certs.Good)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := appendTo(transport(good), &raft.AppendEntriesRequest{RPCHeader: intruder, Term: term - 1})
	if err != nil || resp.Success || resp.Term != term {
		t.Fatalf("stale heartbeat with the cluster's certificate: %v, %+v", err, resp)
	}

	rogue, err := loadTLS(certs.Rogue)
	if err != nil {
		t.Fatal(err)
	}
	attack := &raft.AppendEntriesRequest{RPCHeader: intruder, Term: term + 1, PrevLogEntry: last, PrevLogTerm: term,
		Entries:           []*raft.Log{{Index: last + 1, Term: term + 1, Type: raft.LogCommand, Data: []byte{0xde, 0xad, 0xbe, 0xef}}},
		LeaderCommitIndex: last + 1}
	for name, tp := range map[string]*tlsPair{"plain TCP": nil, "another CA": rogue} {
		if resp, err := appendTo(transport(tp), attack); err == nil {
			t.Errorf("%s: AppendEntries from an intruder got through: %+v", name, resp)
		}
	}
	// (The same request with the cluster's certificate makes the node
	// follow the intruder at term+1: only TLS stops it.)
	if got := n.Raft().CurrentTerm(); got != term || !n.IsLeader() {
		t.Fatalf("after the refused AppendEntries: term %d (was %d), leader %v", got, term, n.IsLeader())
	}
}
