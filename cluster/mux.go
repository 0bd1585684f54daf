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

// mux accepts connections on one listener and hands each to the listener
// of its protocol.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	// inc is this node's incarnation ("" for a legacy node).
	inc      string
	dialer   func(address string, timeout time.Duration) (net.Conn, error)
	tls      *tlsPair // nil: plain TCP
	limits   muxLimits
	slots    connSlots
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

func newMux(ln net.Listener, advertise net.Addr, inc string, dialer func(string, time.Duration) (net.Conn, error), tp *tlsPair, limits muxLimits, logger *slog.Logger) *mux {
	m := &mux{ln: ln, advertise: advertise, inc: inc, dialer: dialer, tls: tp, limits: limits.withDefaults(), logger: logger,
		refusals: newLogLimiter(refusalLogEvery), done: make(chan struct{})}
	m.slots = connSlots{max: m.limits.maxConns, maxPerHost: m.limits.maxPerHost, perHost: map[string]int{}}
	if tp != nil {
		tp.checkOwn(logger, time.Now())
	}
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
		host := remoteHost(c.RemoteAddr())
		if limit := m.slots.acquire(host); limit != "" {
			_ = c.Close()
			m.logLimited("full:"+host, "refusing cluster connection: "+limit+" reached",
				"remote", c.RemoteAddr().String(), "limit", limit)
			continue
		}
		go m.route(&slotConn{Conn: c, release: func() { m.slots.release(host) }})
	}
}

// route reads the protocol byte and the first byte of the first request,
// within the header timeout from accept (TLS handshake included), and only
// then hands the connection over. Every dialer of the port sends its first
// request right after dialling, so the timeout costs members nothing,
// while a stranger who connects and goes quiet never reaches raft (which
// allocates 256 KiB of buffers per connection up front) or the forwarding
// server, and is closed within the timeout.
func (m *mux) route(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(m.limits.header))
	if m.tls != nil {
		tc := tls.Server(c, m.tls.server)
		if err := tc.Handshake(); err != nil { //nolint:noctx // bounded by the header deadline set on c above
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
	var b [1]byte
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
	case protoForward:
	default:
		_ = c.Close()
		m.logLimited("proto:"+remoteHost(c.RemoteAddr()), "refusing cluster connection with unknown protocol",
			"remote", c.RemoteAddr().String(), "byte", proto)
		return
	}
	if _, err := io.ReadFull(c, b[:]); err != nil {
		_ = c.Close()
		m.logger.Debug("closing cluster connection that sent no request", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	_ = c.SetDeadline(time.Time{})
	c = &peekedConn{Conn: c, first: b[:]}
	var sub *subListener
	switch proto {
	case protoRaft, protoRaftID:
		sub = m.raft
		if c = m.handlers.track(c); c == nil {
			return
		}
	case protoForward, protoForwardID:
		sub = m.forward
		c = &idleConn{Conn: c, idle: m.limits.forwardIdle}
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
	m.logLimited("identity:"+remoteHost(c.RemoteAddr()), "refused cluster connection meant for another incarnation of this node "+
		"(its data dir was replaced: the leader adds it back as a new member)",
		"remote", c.RemoteAddr().String(), "protocol", string(proto), "expected", want, "incarnation", m.inc)
}

// logLimited logs a warning at most once per key per refusalLogEvery, so a
// stranger retrying cannot flood the log.
func (m *mux) logLimited(key, msg string, args ...any) {
	if n, ok := m.refusals.allow(key); ok {
		m.logger.Warn(msg, append(args, "suppressed_since_last", n)...)
	}
}

// refused logs a failed TLS handshake, at most once per remote host per
// refusalLogEvery so a misconfigured peer retrying cannot flood the log.
func (m *mux) refused(remote net.Addr, err error) {
	m.logLimited(remoteHost(remote), "refused cluster connection: TLS handshake failed (wrong or missing certificate?)",
		"remote", remote.String(), "err", err)
}

func (m *mux) close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.ln.Close()
	})
	return err
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
	if err := m.hello(c, proto, inc); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	_ = c.SetDeadline(time.Time{})
	if proto == protoForward {
		// Retire the connection before the listener's idle timeout can
		// close it under a request (see retiringConn).
		c = newRetiringConn(c, m.limits.forwardIdle/2, m.limits.now)
	}
	return c, nil
}

// hello sends the protocol byte and, when the dialer expects an
// incarnation, the identity header, and waits for the listener's answer.
func (m *mux) hello(c net.Conn, proto byte, inc string) error {
	if inc == "" {
		_, err := c.Write([]byte{proto})
		return err // wrapped by dial
	}
	id := protoForwardID
	if proto == protoRaft {
		id = protoRaftID
	}
	if _, err := c.Write(append([]byte{id, byte(len(inc))}, inc...)); err != nil {
		return err
	}
	var ack [1]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return err
	}
	if ack[0] != identityOK {
		return fmt.Errorf("%w: %s is not there any more", ErrWrongIncarnation, inc)
	}
	return nil
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
	return c.Conn.Close() // net.Conn contract
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
