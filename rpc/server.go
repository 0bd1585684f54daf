package rpc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Server serves the kv RPC service on one listener.
//
// Lifecycle: New, then Listen (binds, so the caller can log Addr), then
// Serve (blocks), and Shutdown from another goroutine.
type Server struct {
	cfg      Config
	network  string
	address  string
	logger   *slog.Logger
	tracer   trace.Tracer // nil: no spans at all (not even no-op ones)
	storages map[string]*storage
	admin    *adminState // nil without Config.Admin

	// base is the parent of every request context; cancelled when
	// Shutdown's context expires, so Stores abandon what they are doing.
	base   context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	draining atomic.Bool
	done     chan struct{} // closed by Shutdown
	connWG   sync.WaitGroup

	// refusals throttles the log of connections refused at MaxConnections.
	refusals throttle
	// maxReply is the largest reply payload: the frame's 32-bit length.
	// Tests lower it.
	maxReply uint64
}

// New checks cfg and storages and returns a Server that is not listening
// yet. A nil tp means no tracing; a nil logger discards logs.
func New(cfg Config, storages []Storage, tp trace.TracerProvider, logger *slog.Logger) (*Server, error) {
	cfg.setDefaults()
	network, address, err := parseListen(cfg.Listen)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		network:  network,
		address:  address,
		logger:   logger.With("component", "rpc"),
		storages: make(map[string]*storage, len(storages)),
		conns:    make(map[*conn]struct{}),
		done:     make(chan struct{}),
		refusals: throttle{every: refusalLogEvery},
		maxReply: math.MaxUint32,
	}
	for _, st := range storages {
		switch {
		case st.Name == "":
			return nil, fmt.Errorf("%w: a storage has no name", ErrStorage)
		case st.Store == nil:
			return nil, fmt.Errorf("%w %q: no store", ErrStorage, st.Name)
		case s.storages[st.Name] != nil:
			return nil, fmt.Errorf("%w %q: configured twice", ErrStorage, st.Name)
		}
		s.storages[st.Name] = &storage{name: st.Name, driver: st.Driver, store: st.Store, inline: st.Inline, readsInline: st.ReadsInline}
	}
	// A no-op provider still allocates a context per span; skipping spans
	// altogether keeps tracing free when it is off.
	if _, isNoop := tp.(noop.TracerProvider); tp != nil && !isNoop {
		s.tracer = tp.Tracer("kv")
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	if cfg.Admin != nil {
		s.admin = newAdminState(cfg.Admin, s.base, cfg.MaxFrameSize, cfg.AdminToken, s.logger)
	}
	return s, nil
}

// Listen binds the configured address. A stale unix socket file left by a
// previous run is removed first (as RoadRunner does); any other file in the
// way is an error.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return ErrServerClosed
	}
	if s.ln != nil {
		return nil
	}
	if s.network == "unix" {
		if fi, err := os.Lstat(s.address); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			if err := os.Remove(s.address); err != nil {
				return fmt.Errorf("rpc: remove stale socket: %w", err)
			}
		}
	}
	var lc net.ListenConfig
	if s.network == "unix" {
		lc.Control = restrictSocket
	}
	ln, err := lc.Listen(s.base, s.network, s.address)
	if err != nil {
		return fmt.Errorf("rpc: listen %s: %w", s.cfg.Listen, err)
	}
	if s.network == "unix" {
		// Exactly socketMode: the umask may have taken group write away.
		if err := os.Chmod(s.address, socketMode); err != nil {
			_ = ln.Close()
			return fmt.Errorf("rpc: listen %s: %w", s.cfg.Listen, err)
		}
	}
	if s.admin != nil && s.cfg.AdminToken == "" && !localOnly(ln.Addr()) {
		_ = ln.Close()
		return fmt.Errorf("%w: %s listens on %s, which other hosts can reach, and snapshot save and restore "+
			"would answer anyone: set rpc.admin_token (or rpc.admin_token_file), or listen on a loopback "+
			"address (tcp://127.0.0.1:6001) or a unix socket", ErrInsecureAdmin, s.cfg.Listen, ln.Addr())
	}
	s.ln = ln
	return nil
}

// localOnly reports whether only this host can connect to a listener bound
// to a: a unix socket or a loopback address.
func localOnly(a net.Addr) bool {
	switch a := a.(type) {
	case *net.UnixAddr:
		return true
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	default:
		return false
	}
}

// Addr is the bound address (nil before Listen).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve accepts connections until Shutdown, then returns nil. It calls
// Listen first if that was not done (and returns ErrServerClosed if
// Shutdown came first). It returns an error if accepting fails for another
// reason than Shutdown.
func (s *Server) Serve() error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	s.logger.Debug("rpc: serving kv", "addr", ln.Addr().String(), "storages", len(s.storages))

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.draining.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: back off, as
				// net/http does, instead of spinning or dying.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger.Warn("rpc: accept failed; retrying", "err", err, "in", backoff)
				select {
				case <-time.After(backoff):
				case <-s.done:
					return nil
				}
				continue
			}
			return fmt.Errorf("rpc: accept: %w", err)
		}
		backoff = 0
		if s.full() {
			// Closing at once tells the client; leaving the connection in
			// the kernel's backlog would only make it hang.
			_ = nc.Close()
			if n, ok := s.refusals.note(time.Now()); ok {
				s.logger.Warn("rpc: refusing connections: max_connections reached",
					"max_connections", s.cfg.MaxConnections, "refused", n, "last_remote", nc.RemoteAddr().String())
			}
			continue
		}
		c := s.newConn(nc)
		if !s.track(c) {
			_ = nc.Close()
			return nil
		}
		go c.serve()
	}
}

// full reports whether MaxConnections connections are open.
func (s *Server) full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) >= s.cfg.MaxConnections
}

// isTemporary reports accept errors worth retrying (EMFILE, ENFILE,
// ECONNABORTED...), which the net package still flags as temporary.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connWG.Done()
}

// Shutdown stops accepting, stops reading new requests, lets the requests
// in flight finish and be answered, and closes every connection. If ctx
// ends first, it cancels the requests' contexts, closes every connection at
// once and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := !s.draining.Swap(true)
	if first {
		close(s.done)
	}
	var err error
	if s.ln != nil && first {
		err = s.ln.Close()
	}
	for c := range s.conns {
		c.stopReading()
	}
	s.mu.Unlock()

	finished := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		s.cancel()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("rpc: close listener: %w", err)
		}
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.nc.Close()
		}
		s.mu.Unlock()
		return ctx.Err() // the caller's own context error
	}
}
