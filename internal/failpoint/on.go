//go:build failpoint

package failpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Enabled reports whether this build has failpoints.
const Enabled = true

// EnvAddr names the variable holding the endpoint's listen address.
const EnvAddr = "KVNODE_FAILPOINT_ADDR"

// maxDuration bounds a term's duration: a fault, not a hang.
const maxDuration = time.Minute

// kinds says which term each failpoint takes.
var kinds = map[string]string{FSMApply: "sleep", RaftStoreLogs: "sleep", Clock: "offset"}

// set is one failpoint's term.
type set struct {
	kind string // sleep or offset
	d    time.Duration
}

// registry holds the failpoints in force; hooks read it without a lock.
type registry struct {
	mu    sync.Mutex // serialises writers
	terms atomic.Pointer[map[string]set]
}

var reg registry

func (r *registry) get(name string) (set, bool) {
	m := r.terms.Load()
	if m == nil {
		return set{}, false
	}
	s, ok := (*m)[name]
	return s, ok
}

func (r *registry) update(f func(map[string]set)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]set{}
	if old := r.terms.Load(); old != nil {
		m = maps.Clone(*old)
	}
	f(m)
	r.terms.Store(&m)
}

// Sleep waits as long as the named failpoint says, if it is set.
func Sleep(name string) {
	if s, ok := reg.get(name); ok && s.kind == "sleep" {
		time.Sleep(s.d)
	}
}

// Now is the wall clock shifted by the clock failpoint's offset.
func Now() time.Time {
	if s, ok := reg.get(Clock); ok {
		return time.Now().Add(s.d)
	}
	return time.Now()
}

var termPattern = regexp.MustCompile(`^(sleep|offset)\(([^()]+)\)$`)

// parseTerm reads "sleep(50ms)" or "offset(-3s)" for the named failpoint.
func parseTerm(name, term string) (set, error) {
	kind, ok := kinds[name]
	if !ok {
		return set{}, fmt.Errorf("unknown failpoint %q (known: %s)", name, strings.Join(slices.Sorted(maps.Keys(kinds)), ", "))
	}
	m := termPattern.FindStringSubmatch(strings.TrimSpace(term))
	if m == nil || m[1] != kind {
		return set{}, fmt.Errorf("failpoint %s takes %s(DURATION), got %q", name, kind, term)
	}
	d, err := time.ParseDuration(m[2])
	if err != nil {
		return set{}, fmt.Errorf("failpoint %s: %w", name, err)
	}
	if d > maxDuration || d < -maxDuration || (kind == "sleep" && d < 0) {
		return set{}, fmt.Errorf("failpoint %s: %s out of range (at most %s)", name, d, maxDuration)
	}
	return set{kind: kind, d: d}, nil
}

// handler serves the endpoint.
func handler(logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		switch {
		case r.Method == http.MethodGet && name == "":
			m := reg.terms.Load()
			if m == nil {
				return
			}
			for _, n := range slices.Sorted(maps.Keys(*m)) {
				if _, err := fmt.Fprintf(w, "%s=%s(%s)\n", n, (*m)[n].kind, (*m)[n].d); err != nil {
					return // the client went away; nobody reads the rest
				}
			}
		case r.Method == http.MethodPut:
			body, err := io.ReadAll(io.LimitReader(r.Body, 256))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			s, err := parseTerm(name, string(body))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			reg.update(func(m map[string]set) { m[name] = s })
			logger.Warn("failpoint set", "name", name, "term", string(body))
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodDelete:
			if _, ok := kinds[name]; !ok {
				http.Error(w, "unknown failpoint "+name, http.StatusNotFound)
				return
			}
			reg.update(func(m map[string]set) { delete(m, name) })
			logger.Warn("failpoint cleared", "name", name)
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "PUT or DELETE /NAME, GET /", http.StatusMethodNotAllowed)
		}
	})
}

// Serve starts the endpoint on the address in KVNODE_FAILPOINT_ADDR, if
// set, until ctx ends. It returns once the listener is bound.
func Serve(ctx context.Context, logger *slog.Logger) error {
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		return nil
	}
	l, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("failpoint endpoint: %w", err)
	}
	srv := &http.Server{Handler: handler(logger), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("failpoint endpoint stopped", "err", err)
		}
	}()
	logger.Warn("failpoint build: fault injection endpoint listening", "addr", l.Addr().String())
	return nil
}
