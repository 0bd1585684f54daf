package cluster

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// What anyone who reaches the cluster port can hold, before and after
// authenticating.
const (
	// headerTimeout bounds how long an accepted connection may take to
	// finish the TLS handshake, name its protocol and start its first
	// request: a silent peer cannot pin a goroutine or a buffer.
	headerTimeout = 5 * time.Second

	// defaultMaxConnections and defaultMaxConnectionsPerHost cap the
	// port's concurrent connections. A healthy peer holds at most about
	// eight with a node: from the leader a heartbeat, a pipeline and up to
	// three pooled raft connections (MaxPool), up to three pooled ones from
	// a candidate, and one forwarding connection each way. 128 per host
	// leaves room for sixteen nodes sharing one address (one host, or one
	// NAT); 1024 in all for over a hundred peers. Past the header timeout
	// only members hold connections when TLS is on; without TLS a raft
	// connection costs raft's 256 KiB buffers, so the per-host cap is also
	// what one stranger's host can pin (32 MiB).
	defaultMaxConnections        = 1024
	defaultMaxConnectionsPerHost = 128

	// forwardIdleTimeout closes a forwarding connection that has sent
	// nothing for this long. Followers keep their connection to the leader
	// between writes and retire it themselves after half of it (see
	// retiringConn), so only a peer that stopped talking meets it.
	forwardIdleTimeout = time.Minute

	// maxCommitTimeout keeps raft's idle pipeline sends well inside the
	// header timeout.
	maxCommitTimeout = headerTimeout / 5
)

// muxLimits are the cluster port's limits; zero fields take the defaults.
type muxLimits struct {
	maxConns    int
	maxPerHost  int
	header      time.Duration
	forwardIdle time.Duration
	// now is the clock of retiringConn (tests age connections with it).
	now func() time.Time
}

// limitsFor takes the configured connection caps.
func limitsFor(c Config) muxLimits {
	return muxLimits{maxConns: c.MaxConnections, maxPerHost: c.MaxConnectionsPerHost}
}

func (l muxLimits) withDefaults() muxLimits {
	if l.maxConns <= 0 {
		l.maxConns = defaultMaxConnections
	}
	if l.maxPerHost <= 0 {
		l.maxPerHost = defaultMaxConnectionsPerHost
	}
	if l.header <= 0 {
		l.header = headerTimeout
	}
	if l.forwardIdle <= 0 {
		l.forwardIdle = forwardIdleTimeout
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// connSlots counts accepted connections, in all and per remote host, from
// accept until the connection is closed.
type connSlots struct {
	mu              sync.Mutex
	max, maxPerHost int
	total           int
	perHost         map[string]int
}

// acquire takes a slot for a connection from host, or names the limit
// that is full.
func (s *connSlots) acquire(host string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.total >= s.max:
		return fmt.Sprintf("cluster.max_connections (%d)", s.max)
	case s.perHost[host] >= s.maxPerHost:
		return fmt.Sprintf("cluster.max_connections_per_host (%d)", s.maxPerHost)
	}
	s.total++
	s.perHost[host]++
	return ""
}

func (s *connSlots) release(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.perHost[host]--; s.perHost[host] <= 0 {
		delete(s.perHost, host)
	}
}

// count reports the connections held, in all and from host.
func (s *connSlots) count(host string) (total, fromHost int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total, s.perHost[host]
}

// remoteHost is the IP of an address, the key of the per-host cap.
func remoteHost(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// slotConn gives its slot back when it is closed, by whoever closes it.
type slotConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *slotConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close() // net.Conn contract
}

// peekedConn returns the bytes route read ahead of the protocol's handler.
type peekedConn struct {
	net.Conn
	first []byte
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if len(c.first) > 0 && len(p) > 0 {
		n := copy(p, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.Conn.Read(p) // unwrapped: readers compare io.EOF with ==
}

// idleConn is the listener's end of a forwarding connection: a read that
// waits longer than idle fails, and net/rpc then closes the connection
// once the replies in flight are written.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	_ = c.SetReadDeadline(time.Now().Add(c.idle))
	return c.Conn.Read(p) // unwrapped: readers compare io.EOF with ==
}

// retiringConn is the dialer's end of a forwarding connection. It refuses
// the first write after idle without a write, before any byte of the
// request is sent. idle is half the listener's forwardIdle, and both count
// from the dialer's last request, so the listener never closes a
// connection that a request may be crossing.
type retiringConn struct {
	net.Conn
	idle time.Duration
	now  func() time.Time
	born time.Time
	// last is when the last write ended, as time since born (monotonic).
	last atomic.Int64
}

func newRetiringConn(c net.Conn, idle time.Duration, now func() time.Time) *retiringConn {
	return &retiringConn{Conn: c, idle: idle, now: now, born: now()}
}

func (c *retiringConn) Write(p []byte) (int, error) {
	if c.now().Sub(c.born)-time.Duration(c.last.Load()) > c.idle {
		return 0, errRetired
	}
	n, err := c.Conn.Write(p)
	c.last.Store(int64(c.now().Sub(c.born)))
	return n, err // net.Conn contract
}
