package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// One TCP port carries raft and write forwarding: every connection starts
// with one byte naming its protocol. Operators open one port per node, and
// securing that port secures both: with TLS configured the handshake comes
// first, so the protocol byte already travels inside the encrypted stream
// and a peer without a certificate from the cluster CA reaches neither.
//
// A dialer that knows which incarnation it means to reach (the address is
// tagged, identity.go) uses the identity-checked protocol bytes instead:
// after the byte it sends that incarnation, and the listener answers one
// byte, identityOK or identityWrong, before anything else is sent. A node
// that lost its data dir is a new incarnation at the old address: raft
// calls meant for its former self (votes, appends) are refused there, and
// the refusal reaches the dialer before it has sent a request.
const (
	protoRaft    byte = 'R' // untagged: only a legacy node (no incarnation) serves it
	protoForward byte = 'F' // untagged: forwarded calls answer as whoever is there
	// protoRaftID and protoForwardID carry the expected incarnation.
	protoRaftID    byte = 'r'
	protoForwardID byte = 'f'

	identityOK    byte = 1
	identityWrong byte = 0
	// maxIncarnationLen bounds the incarnation a dialer may send.
	maxIncarnationLen = 64
)

// tlsAccepted is the byte a TLS listener sends once it has verified the
// dialer's certificate. In TLS 1.3 the client finishes its handshake before
// the server has checked the client certificate, so without it a refused
// dialer would only learn of the refusal on its first read, after sending
// a request, and could not tell "refused" from "maybe applied".
const tlsAccepted byte = 1

// headerTimeout bounds how long an accepted connection may take to say
// which protocol it speaks, so a silent peer cannot pin a goroutine.
const headerTimeout = 5 * time.Second

// mux accepts connections on one listener and hands each to the listener
// of its protocol.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	// inc is this node's incarnation ("" for a legacy node).
	inc      string
	dialer   func(address string, timeout time.Duration) (net.Conn, error)
	tls      *tlsPair // nil: plain TCP
	logger   *slog.Logger
	refusals *logLimiter

	raft    *subListener
	forward *subListener

	closeOnce sync.Once
	done      chan struct{}

	// handlers tracks accepted raft connections until raft's handler is
	// done with them (see drainRaft).
	handlers handlerSet
}

func newMux(ln net.Listener, advertise net.Addr, inc string, dialer func(string, time.Duration) (net.Conn, error), tp *tlsPair, logger *slog.Logger) *mux {
	m := &mux{ln: ln, advertise: advertise, inc: inc, dialer: dialer, tls: tp, logger: logger,
		refusals: newLogLimiter(refusalLogEvery), done: make(chan struct{})}
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
	_ = c.SetDeadline(time.Now().Add(headerTimeout))
	if m.tls != nil {
		tc := tls.Server(c, m.tls.server)
		if err := tc.Handshake(); err != nil {
			m.refused(c.RemoteAddr(), err)
			_ = c.Close()
			return
		}
		if _, err := tc.Write([]byte{tlsAccepted}); err != nil {
			_ = c.Close()
			return
		}
		c = tc
	}
	if _, err := io.ReadFull(c, b[:]); err != nil {
		_ = c.Close()
		return
	}
	proto := b[0]
	switch proto {
	case protoRaftID, protoForwardID:
		if !m.checkIdentity(c, proto) {
			_ = c.Close()
			return
		}
	case protoRaft:
		if m.inc != "" {
			m.wrongIdentity(c, proto, "")
			_ = c.Close()
			return
		}
	}
	_ = c.SetDeadline(time.Time{})
	var sub *subListener
	switch proto {
	case protoRaft, protoRaftID:
		sub = m.raft
		if c = m.handlers.track(c); c == nil {
			return
		}
	case protoForward, protoForwardID:
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

// checkIdentity reads the incarnation an identity-checked dialer expects
// and answers whether this node is it. A forwarding dialer without one
// (its address was untagged) is served by anyone; raft only by a legacy
// node.
func (m *mux) checkIdentity(c net.Conn, proto byte) bool {
	var n [1]byte
	if _, err := io.ReadFull(c, n[:]); err != nil || n[0] > maxIncarnationLen {
		return false
	}
	want := make([]byte, n[0])
	if _, err := io.ReadFull(c, want); err != nil {
		return false
	}
	ok := string(want) == m.inc || len(want) == 0 && (proto == protoForwardID || m.inc == "")
	if !ok {
		m.wrongIdentity(c, proto, string(want))
		_, _ = c.Write([]byte{identityWrong})
		return false
	}
	_, err := c.Write([]byte{identityOK})
	return err == nil
}

// wrongIdentity logs a connection meant for another incarnation of this
// node, once per remote host per refusalLogEvery.
func (m *mux) wrongIdentity(c net.Conn, proto byte, want string) {
	remote := c.RemoteAddr().String()
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	if n, ok := m.refusals.allow("identity " + host); ok {
		m.logger.Warn("refused cluster connection meant for another incarnation of this node "+
			"(its data dir was replaced: the leader adds it back as a new member)",
			"remote", remote, "protocol", string(proto), "expected", want, "incarnation", m.inc, "suppressed_since_last", n)
	}
}

// refused logs a failed TLS handshake, at most once per remote host per
// refusalLogEvery so a misconfigured peer retrying cannot flood the log.
func (m *mux) refused(remote net.Addr, err error) {
	host := remote.String()
	if h, _, serr := net.SplitHostPort(host); serr == nil {
		host = h
	}
	if n, ok := m.refusals.allow(host); ok {
		m.logger.Warn("refused cluster connection: TLS handshake failed (wrong or missing certificate?)",
			"remote", remote.String(), "err", err, "suppressed_since_last", n)
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

// dial opens a connection to a peer's cluster port for proto. A tagged
// address is dialled with the identity-checked protocol: the peer must be
// that incarnation (ErrWrongIncarnation otherwise, nothing sent).
func (m *mux) dial(address string, proto byte, timeout time.Duration) (net.Conn, error) {
	start := time.Now()
	address, inc := splitAddr(address)
	c, err := m.dialer(address, timeout)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	_ = c.SetDeadline(start.Add(timeout))
	if m.tls != nil {
		tc := tls.Client(c, m.tls.client)
		var ack [1]byte
		if _, err := tc.Read(ack[:]); err != nil || ack[0] != tlsAccepted {
			_ = c.Close()
			return nil, fmt.Errorf("dial %s: TLS handshake: %w", address, cmpErr(err, errNoTLSAck))
		}
		c = tc
	}
	if inc == "" {
		if _, err := c.Write([]byte{proto}); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("dial %s: %w", address, err)
		}
		_ = c.SetDeadline(time.Time{})
		return c, nil
	}
	if proto == protoRaft {
		proto = protoRaftID
	} else {
		proto = protoForwardID
	}
	hdr := append([]byte{proto, byte(len(inc))}, inc...)
	var ack [1]byte
	if _, err := c.Write(hdr); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	if _, err := io.ReadFull(c, ack[:]); err != nil || ack[0] != identityOK {
		_ = c.Close()
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", address, err)
		}
		return nil, fmt.Errorf("dial %s: %w: %s is not there any more", address, ErrWrongIncarnation, inc)
	}
	_ = c.SetDeadline(time.Time{})
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

// cmpErr returns err, or fallback when err is nil.
func cmpErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

// handlerSet knows which accepted raft connections raft still serves.
// raft answers heartbeats on the connection's own goroutine, writing the
// term to the stable store, and that goroutine outlives raft.Shutdown; the
// node must not close the raft log under it (raft panics on a failed
// write). raft closes a connection when its handler returns, which is how
// the set learns the handler is done.
type handlerSet struct {
	mu       sync.Mutex
	conns    map[*servedConn]struct{}
	draining bool
	drained  chan struct{}
}

type servedConn struct {
	net.Conn
	set  *handlerSet
	once sync.Once
}

func (c *servedConn) Close() error {
	c.once.Do(func() { c.set.done(c) })
	return c.Conn.Close() //nolint:wrapcheck // net.Conn contract
}

// track wraps an accepted connection, or closes it and returns nil once
// draining has begun.
func (h *handlerSet) track(c net.Conn) net.Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		_ = c.Close()
		return nil
	}
	if h.conns == nil {
		h.conns = map[*servedConn]struct{}{}
	}
	sc := &servedConn{Conn: c, set: h}
	h.conns[sc] = struct{}{}
	return sc
}

func (h *handlerSet) done(c *servedConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c)
	if h.draining && len(h.conns) == 0 && h.drained != nil {
		close(h.drained)
		h.drained = nil
	}
}

// drainRaft cuts every accepted raft connection and waits, at most
// timeout, until raft's handlers have returned: after it the raft log
// stores can close. Call it after raft and its transport shut down.
func (m *mux) drainRaft(timeout time.Duration) {
	h := &m.handlers
	h.mu.Lock()
	h.draining = true
	if len(h.conns) == 0 {
		h.mu.Unlock()
		return
	}
	drained := make(chan struct{})
	h.drained = drained
	conns := make([]net.Conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c.Conn)
	}
	h.mu.Unlock()
	for _, c := range conns {
		// The inner connection: the handler's next read fails, it returns
		// and closes the wrapper, which reports it done.
		_ = c.Close()
	}
	select {
	case <-drained:
	case <-time.After(timeout):
		m.logger.Warn("raft connection handlers still running at shutdown", "after", timeout)
	}
}
