package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// One TCP port carries raft and write forwarding: every connection starts
// with one byte naming its protocol. Operators open one port per node, and
// securing that port (TLS, later) secures both.
const (
	protoRaft    byte = 'R'
	protoForward byte = 'F'
)

// headerTimeout bounds how long an accepted connection may take to say
// which protocol it speaks, so a silent peer cannot pin a goroutine.
const headerTimeout = 5 * time.Second

// mux accepts connections on one listener and hands each to the listener
// of its protocol.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	dialer    func(address string, timeout time.Duration) (net.Conn, error)
	logger    *slog.Logger

	raft    *subListener
	forward *subListener

	closeOnce sync.Once
	done      chan struct{}
}

func newMux(ln net.Listener, advertise net.Addr, dialer func(string, time.Duration) (net.Conn, error), logger *slog.Logger) *mux {
	m := &mux{ln: ln, advertise: advertise, dialer: dialer, logger: logger, done: make(chan struct{})}
	m.raft = &subListener{m: m, proto: protoRaft, conns: make(chan net.Conn)}
	m.forward = &subListener{m: m, proto: protoForward, conns: make(chan net.Conn)}
	go m.serve()
	return m
}

func (m *mux) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.logger.Error("cluster listener failed", "err", err)
			return
		}
		go m.route(c)
	}
}

func (m *mux) route(c net.Conn) {
	var b [1]byte
	_ = c.SetReadDeadline(time.Now().Add(headerTimeout))
	if _, err := c.Read(b[:]); err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	var sub *subListener
	switch b[0] {
	case protoRaft:
		sub = m.raft
	case protoForward:
		sub = m.forward
	default:
		m.logger.Warn("refusing cluster connection with unknown protocol", "remote", c.RemoteAddr().String(), "byte", b[0])
		_ = c.Close()
		return
	}
	select {
	case sub.conns <- c:
	case <-m.done:
		_ = c.Close()
	}
}

func (m *mux) close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.ln.Close()
	})
	return err //nolint:wrapcheck
}

// dial opens a connection to a peer's cluster port for proto.
func (m *mux) dial(address string, proto byte, timeout time.Duration) (net.Conn, error) {
	c, err := m.dialer(address, timeout)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{proto}); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	_ = c.SetWriteDeadline(time.Time{})
	return c, nil
}

// subListener is the net.Listener of one protocol on the mux. For raft it
// is also the StreamLayer.
type subListener struct {
	m     *mux
	proto byte
	conns chan net.Conn
}

var _ raft.StreamLayer = (*subListener)(nil)

func (s *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.m.done:
		return nil, net.ErrClosed
	}
}

// Close closes the whole mux: raft's transport closes its listener on
// shutdown, which is when the node stops serving the port anyway.
func (s *subListener) Close() error { return s.m.close() }

func (s *subListener) Addr() net.Addr { return s.m.advertise }

func (s *subListener) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.m.dial(string(address), s.proto, timeout)
}
