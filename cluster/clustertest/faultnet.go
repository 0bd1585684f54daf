package clustertest

import (
	"errors"
	"net"
	"sync"
	"time"
)

// errIsolated is what a cut-off node's dials fail with.
var errIsolated = errors.New("clustertest: node isolated")

// faultNet is one node's view of the network: while isolated it refuses
// every connection in either direction and has dropped the ones it had.
type faultNet struct {
	mu       sync.Mutex
	isolated bool
	conns    map[net.Conn]struct{}
}

func newFaultNet() *faultNet { return &faultNet{conns: map[net.Conn]struct{}{}} }

func (f *faultNet) setIsolated(v bool) {
	f.mu.Lock()
	f.isolated = v
	var drop []net.Conn
	if v {
		for c := range f.conns {
			drop = append(drop, c)
		}
	}
	f.mu.Unlock()
	// Closing takes f.mu again (trackedConn.Close), so not under it.
	for _, c := range drop {
		_ = c.Close()
	}
}

func (f *faultNet) track(c net.Conn) (net.Conn, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.isolated {
		_ = c.Close()
		return nil, false
	}
	tc := &trackedConn{Conn: c, f: f}
	f.conns[tc] = struct{}{}
	return tc, true
}

func (f *faultNet) dial(address string, timeout time.Duration) (net.Conn, error) {
	f.mu.Lock()
	iso := f.isolated
	f.mu.Unlock()
	if iso {
		return nil, errIsolated
	}
	c, err := net.DialTimeout("tcp", address, timeout) //nolint:noctx // cluster.Options.Dial's shape: a timeout, no context
	if err != nil {
		return nil, err
	}
	tc, ok := f.track(c)
	if !ok {
		return nil, errIsolated
	}
	return tc, nil
}

type trackedConn struct {
	net.Conn
	f    *faultNet
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.f.mu.Lock()
		delete(c.f.conns, c)
		c.f.mu.Unlock()
	})
	return c.Conn.Close()
}

// faultListener drops connections accepted while its node is isolated.
type faultListener struct {
	net.Listener
	f *faultNet
}

func (l *faultListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc, ok := l.f.track(c); ok {
			return tc, nil
		}
	}
}
