package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcessesOptions configures a cluster of local kvnode processes.
type ProcessesOptions struct {
	// Binary is the kvnode executable.
	Binary string
	// Config is jepsen/docker/kvnode.yaml; addresses and ids are overridden.
	Config string
	// Dir holds each node's data dir and log.
	Dir              string
	UnsafeLocalReads bool
	// ReapAfter sets cluster.reap_after (0: kvnode's default).
	ReapAfter time.Duration
	// LogStore sets cluster.raft.log_store ("": kvnode's default, boltdb).
	LogStore string
	// Failpoints serves each node's fault-injection endpoint on the
	// loopback; Binary must be built with -tags failpoint.
	Failpoints bool
	// StaticPeers bootstraps from a static cluster.peers list instead of
	// gossip's bootstrap_expect.
	StaticPeers bool
}

// BuildKVNode builds kvnode from the repository at root into out, with the
// failpoint build tag when failpoints is set. It builds in the main module,
// whose go.sum covers the command's dependencies.
func BuildKVNode(ctx context.Context, root, out string, failpoints bool) error {
	args := []string{"build", "-o", out}
	if failpoints {
		args = append(args, "-tags", "failpoint")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/kvnode")...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build kvnode: %w\n%s", err, b)
	}
	return nil
}

// Processes is a Cluster of kvnode processes on 127.0.0.1. It cannot cut the
// network (Isolate returns ErrUnsupported); kill, pause and replace work.
type Processes struct {
	opts   ProcessesOptions
	rpc    map[string]int
	raft   map[string]int
	gossip map[string]int
	fps    map[string]string
	mu     sync.Mutex
	procs  map[string]*proc
	exits  exitLog
	// token is the admin token in the nodes' secrets.
	token string
}

// proc is a running node; done closes when the process has exited.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

var _ Cluster = (*Processes)(nil)

// StartProcesses starts three processes and waits until they answer.
func StartProcesses(ctx context.Context, opts ProcessesOptions) (*Processes, error) {
	l := &Processes{opts: opts, rpc: map[string]int{}, raft: map[string]int{}, gossip: map[string]int{}, fps: map[string]string{}, procs: map[string]*proc{}}
	for _, n := range l.Nodes() {
		var err error
		if l.rpc[n], err = freePort(); err != nil {
			return nil, err
		}
		if l.raft[n], err = freePort(); err != nil {
			return nil, err
		}
		if l.gossip[n], err = freePort(); err != nil {
			return nil, err
		}
		if opts.Failpoints {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			l.fps[n] = fmt.Sprintf("127.0.0.1:%d", p)
		}
	}
	var err error
	if l.token, err = writeSecrets(filepath.Join(opts.Dir, "secrets"), l.Nodes()); err != nil {
		return nil, err
	}
	for _, n := range l.Nodes() {
		if err := l.spawn(n); err != nil {
			_ = l.Close(ctx)
			return nil, err
		}
	}
	if err := WaitReady(ctx, l, 60*time.Second); err != nil {
		_ = l.Close(ctx)
		return nil, err
	}
	if err := probeFailpoints(ctx, l.fps, 30*time.Second); err != nil {
		_ = l.Close(ctx)
		return nil, err
	}
	return l, nil
}

func (l *Processes) spawn(node string) error {
	// The nodes find each other by gossip, as in the compose cluster.
	var seeds []string
	for _, n := range l.Nodes() {
		seeds = append(seeds, fmt.Sprintf("127.0.0.1:%d", l.gossip[n]))
	}
	dir := filepath.Join(l.opts.Dir, node)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("node dir: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(l.opts.Dir, node+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("node log: %w", err)
	}
	secrets := filepath.Join(l.opts.Dir, "secrets")
	raftAddr := fmt.Sprintf("127.0.0.1:%d", l.raft[node])
	gossipAddr := fmt.Sprintf("127.0.0.1:%d", l.gossip[node])
	cmd := exec.Command(l.opts.Binary, "serve", "-c", l.opts.Config, //nolint:noctx // a node outlives this call: nemeses and Close stop it by signal
		"-o", fmt.Sprintf("rpc.listen=tcp://127.0.0.1:%d", l.rpc[node]),
		"-o", "cluster.data_dir="+filepath.Join(dir, "data"),
		"-o", "cluster.raft.bind="+raftAddr,
		"-o", "cluster.raft.advertise="+raftAddr,
		"-o", "cluster.gossip.bind="+gossipAddr,
		"-o", "cluster.gossip.advertise="+gossipAddr,
		"-o", "cluster.gossip.join=["+strings.Join(seeds, ", ")+"]",
		// The secrets kvnode.yaml expects in /etc/kvnode/secrets.
		"-o", "cluster.gossip.encrypt_key_file="+filepath.Join(secrets, "gossip.key"),
		"-o", "rpc.admin_token_file="+filepath.Join(secrets, "admin.token"),
		"-o", "cluster.tls.ca="+filepath.Join(secrets, "ca.pem"),
		"-o", "cluster.tls.cert="+filepath.Join(secrets, node+".pem"),
		"-o", "cluster.tls.key="+filepath.Join(secrets, node+"-key.pem"))
	if l.opts.ReapAfter > 0 {
		cmd.Args = append(cmd.Args, "-o", "cluster.reap_after="+l.opts.ReapAfter.String())
	}
	if l.opts.LogStore != "" {
		cmd.Args = append(cmd.Args, "-o", "cluster.raft.log_store="+l.opts.LogStore)
	}
	cmd.Env = append(os.Environ(), "HOSTNAME="+node,
		fmt.Sprintf("KVNODE_CLUSTER_UNSAFE_LOCAL_LINEARIZABLE_READS=%t", l.opts.UnsafeLocalReads))
	if l.opts.Failpoints {
		cmd.Env = append(cmd.Env, "KVNODE_FAILPOINT_ADDR="+l.fps[node])
	}
	if l.opts.StaticPeers {
		var peers []string
		for _, n := range l.Nodes() {
			peers = append(peers, fmt.Sprintf("%s=127.0.0.1:%d", n, l.raft[n]))
		}
		cmd.Env = append(cmd.Env, "KVNODE_CLUSTER_PEERS="+strings.Join(peers, ","), "KVNODE_CLUSTER_BOOTSTRAP_EXPECT=0")
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", node, err)
	}
	pr := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		l.exits.record(node, time.Now(), exitStatus(cmd.ProcessState))
		close(pr.done)
	}()
	l.mu.Lock()
	l.procs[node] = pr
	l.mu.Unlock()
	return nil
}

func (l *Processes) signal(node string, sig syscall.Signal) error {
	l.mu.Lock()
	pr := l.procs[node]
	l.mu.Unlock()
	if pr == nil {
		return fmt.Errorf("%w: %s is not running", ErrNotReady, node)
	}
	if err := pr.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s: %w", node, err)
	}
	return nil
}

// Name implements Cluster.
func (l *Processes) Name() string { return "local" }

// AdminToken implements Cluster.
func (l *Processes) AdminToken() string { return l.token }

// Nodes implements Cluster.
func (l *Processes) Nodes() []string { return []string{"node1", "node2", "node3"} }

// Addr implements Cluster.
func (l *Processes) Addr(node string) string { return fmt.Sprintf("127.0.0.1:%d", l.rpc[node]) }

// exitStatus is a process's exit status, 128+signal when a signal ended it.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// Exits implements Cluster.
func (l *Processes) Exits() []Exit { return l.exits.list() }

// Kill implements Cluster.
func (l *Processes) Kill(ctx context.Context, node string) error {
	undo := l.exits.expectExit(node)
	if err := l.signal(node, syscall.SIGKILL); err != nil {
		undo()
		return err
	}
	l.mu.Lock()
	pr := l.procs[node]
	l.procs[node] = nil
	l.mu.Unlock()
	select {
	case <-pr.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%w: %s did not exit after SIGKILL", ErrNotReady, node)
	}
}

// Start implements Cluster.
// Like `docker start`, it leaves a running node as it is: a second process
// on the same data dir and ports would be a fault no nemesis asked for.
func (l *Processes) Start(ctx context.Context, node string) error {
	l.mu.Lock()
	pr := l.procs[node]
	l.mu.Unlock()
	running := false
	if pr != nil {
		select {
		case <-pr.done:
		default:
			running = true
		}
	}
	if !running {
		if err := l.spawn(node); err != nil {
			return err
		}
	}
	return waitNode(ctx, l, node, 60*time.Second)
}

// Pause implements Cluster.
func (l *Processes) Pause(_ context.Context, node string) error {
	return l.signal(node, syscall.SIGSTOP)
}

// Resume implements Cluster.
func (l *Processes) Resume(_ context.Context, node string) error {
	return l.signal(node, syscall.SIGCONT)
}

// Failpoints implements Cluster.
func (l *Processes) Failpoints() bool { return l.opts.Failpoints }

// Failpoint implements Cluster.
func (l *Processes) Failpoint(ctx context.Context, node, name, term string) error {
	if !l.opts.Failpoints {
		return ErrUnsupported
	}
	return setFailpoint(ctx, l.fps[node], name, term)
}

// Isolate implements Cluster: processes sharing the loopback cannot be cut apart.
func (l *Processes) Isolate(context.Context, string) error { return ErrUnsupported }

// Rejoin implements Cluster.
func (l *Processes) Rejoin(context.Context, string) error { return ErrUnsupported }

// Replace implements Cluster; the node may already be stopped.
func (l *Processes) Replace(ctx context.Context, node string) error {
	l.mu.Lock()
	running := l.procs[node] != nil
	l.mu.Unlock()
	if running {
		if err := l.Kill(ctx, node); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(filepath.Join(l.opts.Dir, node, "data")); err != nil {
		return fmt.Errorf("wipe %s: %w", node, err)
	}
	return l.Start(ctx, node)
}

// Logs implements Cluster: the last 64 KiB of the node's log file.
func (l *Processes) Logs(_ context.Context, node string) (string, error) {
	f, err := os.Open(filepath.Join(l.opts.Dir, node+".log"))
	if err != nil {
		return "", fmt.Errorf("logs: %w", err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("logs: %w", err)
	}
	off := max(st.Size()-64<<10, 0)
	buf := make([]byte, st.Size()-off)
	_, err = f.ReadAt(buf, off)
	if err != nil {
		return "", fmt.Errorf("logs: %w", err)
	}
	return string(buf), nil
}

// FullLogs implements Cluster.
func (l *Processes) FullLogs(_ context.Context, node string) (string, error) {
	b, err := os.ReadFile(filepath.Join(l.opts.Dir, node+".log"))
	if err != nil {
		return "", fmt.Errorf("logs: %w", err)
	}
	return string(b), nil
}

// Close implements Cluster: every process gets SIGCONT then SIGKILL.
func (l *Processes) Close(ctx context.Context) error {
	for _, n := range l.Nodes() {
		_ = l.signal(n, syscall.SIGCONT)
		_ = l.Kill(ctx, n)
	}
	return nil
}
