package testsvc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// attempts bounds the retries when the port picked for a server was
	// taken by someone else between our probe and the server's bind.
	attempts = 5
	// startTimeout bounds how long one attempt waits for the server to answer.
	startTimeout = 15 * time.Second
	// probeTimeout bounds one dial-and-ask round of the readiness poll.
	probeTimeout = time.Second
)

// Redis returns the address of a redis-server started for t on a free
// loopback port with persistence disabled. The process is killed when t ends.
func Redis(t testing.TB) string {
	t.Helper()
	if addr := os.Getenv("KVNODE_TEST_REDIS_ADDR"); addr != "" {
		return addr
	}
	dir := t.TempDir()
	return start(t, "redis-server", "apt-get install redis-server", func(port int) []string {
		return []string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--daemonize", "no",
			"--loglevel", "warning",
		}
	}, redisPID)
}

// Memcached returns the address of a memcached started for t on a free
// loopback port with UDP disabled. The process is killed when t ends.
func Memcached(t testing.TB) string {
	t.Helper()
	if addr := os.Getenv("KVNODE_TEST_MEMCACHED_ADDR"); addr != "" {
		return addr
	}
	return start(t, "memcached", "apt-get install memcached", func(port int) []string {
		args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0"}
		if os.Geteuid() == 0 {
			// memcached refuses to run as root unless told which user to be.
			args = append(args, "-u", "root")
		}
		return args
	}, memcachedPID)
}

// pidProbe asks the server at addr for its process id. Checking the pid, not
// just any answer, proves the server on the port is the one we started and
// not a stranger that won the race for the port.
type pidProbe func(ctx context.Context, addr string) (int, error)

func start(t testing.TB, bin, install string, args func(port int) []string, probe pidProbe) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("testsvc: %s not found in PATH (%v); install it, e.g. `%s`", bin, err, install)
	}
	var failures []string
	for range attempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testsvc: pick a free port: %v", err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p, err := launch(path, args(port))
		if err != nil {
			t.Fatalf("testsvc: start %s: %v", bin, err)
		}
		if err := p.waitReady(addr, probe); err != nil {
			p.kill()
			failures = append(failures, fmt.Sprintf("port %d: %v; output: %s", port, err, p.output()))
			continue
		}
		t.Cleanup(p.kill)
		return addr
	}
	t.Fatalf("testsvc: %s did not come up after %d attempts:\n%s", bin, attempts, strings.Join(failures, "\n"))
	return ""
}

// freePort asks the kernel for an unused loopback port. The port is free only
// until someone else takes it, which is why start retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0") //nolint:noctx // a loopback IP literal: no lookup or wait for a context to bound
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, err
	}
	return port, nil
}

// proc is one started server process.
type proc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	once   sync.Once
}

func launch(path string, args []string) (*proc, error) {
	p := &proc{out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(path, args...) //nolint:gosec,noctx // the server binary the test looked up; t.Cleanup kills it
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait() // the exit status is reported through output and exited
		close(p.exited)
	}()
	return p, nil
}

// waitReady polls until the server answers with its own pid, it exits
// (typically a lost race for the port), or startTimeout passes.
func (p *proc) waitReady(addr string, probe pidProbe) error {
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		pid, err := probe(ctx, addr)
		cancel()
		switch {
		case err == nil && pid == p.cmd.Process.Pid:
			return nil
		case err == nil:
			lastErr = fmt.Errorf("port answered by another process (pid %d, ours %d)", pid, p.cmd.Process.Pid)
		default:
			lastErr = err
		}
		select {
		case <-p.exited:
			return fmt.Errorf("process exited before answering (last probe: %w)", lastErr)
		case <-tick.C:
		}
	}
	return fmt.Errorf("no answer within %s (last probe: %w)", startTimeout, lastErr)
}

func (p *proc) kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill() // fails only if it already exited, which is what we want
		<-p.exited
	})
}

func (p *proc) output() string { return strings.TrimSpace(p.out.String()) }

// syncBuffer collects a process's output; exec writes it from its own
// goroutine while the test may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var errNoPID = errors.New("reply carries no process id")

// redisPID sends INFO server in RESP and reads process_id from the reply.
func redisPID(ctx context.Context, addr string) (int, error) {
	return ask(ctx, addr, "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n", "process_id:")
}

// memcachedPID sends stats and reads "STAT pid" from the reply.
func memcachedPID(ctx context.Context, addr string) (int, error) {
	return ask(ctx, addr, "stats\r\n", "STAT pid ")
}

// ask writes req and returns the integer on the first reply line that starts
// with prefix. It gives up at the end of a memcached reply, on an error
// reply, or when ctx's deadline passes.
func ask(ctx context.Context, addr, req, prefix string) (int, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return 0, err
		}
	}
	if _, err := conn.Write([]byte(req)); err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, prefix); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				return 0, fmt.Errorf("parse pid %q: %w", v, err)
			}
			return pid, nil
		}
		if line == "END" || strings.HasPrefix(line, "-") || strings.HasSuffix(line, "ERROR") ||
			strings.Contains(line, "ERROR ") {
			return 0, fmt.Errorf("%w: %q", errNoPID, line)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errNoPID
}
