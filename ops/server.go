package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Bounds of the HTTP server: scrapers and probes send tiny requests, so
// anything slow is a stuck or hostile client.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 8 << 10
	// scrapeTimeout bounds gathering the metrics of one scrape.
	scrapeTimeout = 10 * time.Second
)

// Readiness answers /ready: whether the node should take traffic, and if
// not, why.
type Readiness func() (ready bool, reason string)

// Server serves /health, /ready and /metrics on one or more addresses
// (RoadRunner's metrics.address and status.address may differ).
type Server struct {
	logger *slog.Logger
	lns    []net.Listener
	srvs   []*http.Server
	wg     sync.WaitGroup
}

// NewServer binds every address ("host:port", "http://" allowed; a
// duplicate is served once)
// so that a busy port is reported at start. m may be nil (no /metrics) and
// ready nil (always ready). With pprof the Go profiler is served under
// /debug/pprof/ too (operators turn it on to find where time goes).
func NewServer(addrs []string, m *Metrics, ready Readiness, pprof bool, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if ready == nil {
		ready = func() (bool, string) { return true, "" }
	}
	s := &Server{logger: logger.With("component", "ops")}
	h := Handler(m, ready)
	if pprof {
		h = withPprof(h)
	}
	var seen []string
	for _, a := range addrs {
		a = strings.TrimPrefix(a, "http://")
		_, port, err := net.SplitHostPort(a)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("%w: address %q: %w", ErrConfig, a, err)
		}
		// Port 0 asks for a fresh port each time, so it is never a duplicate.
		if port != "0" && slices.Contains(seen, a) {
			continue
		}
		seen = append(seen, a)
		ln, err := net.Listen("tcp", a) //nolint:noctx // a startup-only bind; no caller has a context to pass yet (cmd/kvnode, issue 14)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("ops: listen %s: %w", a, err)
		}
		s.lns = append(s.lns, ln)
		s.srvs = append(s.srvs, &http.Server{
			Handler:           h,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
		})
	}
	return s, nil
}

func (s *Server) closeListeners() {
	for _, ln := range s.lns {
		_ = ln.Close()
	}
}

// Addrs are the bound addresses.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.lns))
	for i, ln := range s.lns {
		out[i] = ln.Addr()
	}
	return out
}

// Serve serves every address until Shutdown and returns nil then, or the
// first failure of one of them.
func (s *Server) Serve() error {
	errs := make(chan error, len(s.srvs))
	for i, srv := range s.srvs {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.Serve(s.lns[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("ops: serve %s: %w", s.lns[i].Addr(), err)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case err := <-errs:
		return err
	case <-done:
		select {
		case err := <-errs:
			return err
		default:
			return nil
		}
	}
}

// Shutdown stops accepting and waits for requests in flight until ctx
// ends, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	for _, srv := range s.srvs {
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
			errs = append(errs, fmt.Errorf("ops: shutdown: %w", err))
		}
	}
	s.closeListeners() // those Serve never started on
	return errors.Join(errs...)
}

// Handler serves the three endpoints; everything else is 404.
func Handler(m *Metrics, ready Readiness) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ok, reason := ready(); !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + reason + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if m != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
			Timeout: scrapeTimeout,
		}))
	}
	return mux
}

// withPprof serves net/http/pprof's handlers beside h.
func withPprof(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
