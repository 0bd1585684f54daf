package cluster

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestIdentity_CreatedOnceAndCheckedAgainstTheNodeID(t *testing.T) {
	dir := t.TempDir()
	id, created, err := loadIdentity(dir, "n1", false)
	if err != nil || !created || id.Incarnation == "" || id.NodeID != "n1" {
		t.Fatalf("first start: %+v created=%v err=%v", id, created, err)
	}
	again, created, err := loadIdentity(dir, "n1", true)
	if err != nil || created || again.Incarnation != id.Incarnation {
		t.Fatalf("restart: %+v created=%v err=%v, want the same incarnation", again, created, err)
	}
	if _, _, err := loadIdentity(dir, "n2", true); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `belongs to node "n1"`) {
		t.Fatalf("another node's data dir: %v", err)
	}
	// Raft state from before identities existed: the node keeps answering
	// untagged, as the configuration its peers hold names it.
	legacy := t.TempDir()
	id, created, err = loadIdentity(legacy, "n1", true)
	if err != nil || !created || id.Incarnation != "" {
		t.Fatalf("legacy state: %+v created=%v err=%v", id, created, err)
	}
	if _, err := os.Stat(filepath.Join(legacy, identityFile)); err != nil {
		t.Fatal(err)
	}
}

// identityMux listens as incarnation inc and counts the connections it
// hands to its forwarding side.
func identityMux(t *testing.T, inc string) (addr string, accepted <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLogBook()
	m := newMux(ln, ln.Addr(), inc, nil, nil, muxLimits{}, l)
	t.Cleanup(func() { _ = m.close() })
	out := make(chan net.Conn, 16)
	for _, sub := range []*subListener{m.forward, m.raft} {
		go func() {
			for {
				c, err := sub.Accept()
				if err != nil {
					return
				}
				out <- c
			}
		}()
	}
	return ln.Addr().String(), out
}

// The cluster port serves a connection only as the incarnation the dialer
// means: a node that lost its data dir refuses raft meant for its former
// self, and the dialer learns it before sending anything.
func TestMux_ConnectionsReachOnlyTheIncarnationTheyMean(t *testing.T) {
	addr, accepted := identityMux(t, "aaaa")
	legacyAddr, legacyAccepted := identityMux(t, "")
	dialer := dialingMux(t, func(a string, d time.Duration) (net.Conn, error) { return net.DialTimeout("tcp", a, d) }).m

	for _, tc := range []struct {
		name     string
		addr     string
		proto    byte
		accepted <-chan net.Conn
		ok       bool
	}{
		{"raft to the right incarnation", tagAddr(addr, "aaaa"), protoRaft, accepted, true},
		{"forwarding to the right incarnation", tagAddr(addr, "aaaa"), protoForward, accepted, true},
		{"raft to a former incarnation", tagAddr(addr, "bbbb"), protoRaft, accepted, false},
		{"forwarding to a former incarnation", tagAddr(addr, "bbbb"), protoForward, accepted, false},
		{"untagged raft to a node with an incarnation", addr, protoRaft, accepted, false},
		{"untagged forwarding (a static peer asking who is there)", addr, protoForward, accepted, true},
		{"untagged raft to a legacy node", legacyAddr, protoRaft, legacyAccepted, true},
		{"tagged raft to a legacy node", tagAddr(legacyAddr, "aaaa"), protoRaft, legacyAccepted, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialer.dial(tc.addr, tc.proto, 2*time.Second)
			if tc.ok {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer func() { _ = c.Close() }() // the test is over once the listener has it
				if _, err := c.Write([]byte("x")); err != nil {
					t.Fatal(err)
				}
				select {
				case sc := <-tc.accepted:
					_ = sc.Close()
				case <-time.After(5 * time.Second):
					t.Fatal("not handed to the protocol's listener")
				}
				return
			}
			if err == nil {
				// Untagged raft gets no answer: the listener just closes.
				defer func() { _ = c.Close() }() // already closed by the listener
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				var b [1]byte
				if _, rerr := c.Read(b[:]); rerr == nil {
					t.Fatal("a refused connection stayed open")
				}
			} else if _, inc := splitAddr(tc.addr); inc != "" && !errors.Is(err, ErrWrongIncarnation) {
				t.Fatalf("dial: %v, want ErrWrongIncarnation", err)
			}
			select {
			case sc := <-tc.accepted:
				_ = sc.Close()
				t.Fatal("a connection meant for another incarnation was served")
			default:
			}
		})
	}
}
