package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DockerOptions configures a compose cluster.
type DockerOptions struct {
	// ComposeFile is docker-compose.cluster.yml.
	ComposeFile string
	// Project is the compose project name; unique per run so that runs and
	// a user's own cluster never share containers, networks or volumes.
	Project string
	// Image is the kvnode image (built by `make image`).
	Image string
	// UnsafeLocalReads turns on cluster.unsafe.local_linearizable_reads.
	UnsafeLocalReads bool
	// ReapAfter sets cluster.reap_after (0: the compose default).
	ReapAfter time.Duration
	// LogStore sets cluster.raft.log_store ("": the compose default, boltdb).
	LogStore string
	// Overrides are compose files applied over ComposeFile, e.g.
	// jepsen/docker/compose.static-peers.yml.
	Overrides []string
	// Failpoints publishes each node's fault-injection endpoint; it needs
	// jepsen/docker/compose.failpoint.yml among Overrides and an image
	// built with -tags failpoint (make image-failpoint).
	Failpoints bool
	Logger     *slog.Logger
}

// Docker is a Cluster of docker-compose containers.
type Docker struct {
	opts  DockerOptions
	env   []string
	ports map[string]int
	// fps are the failpoint endpoints on the loopback, by node.
	fps map[string]string
	ids map[string]string
	// secrets is the directory mounted as the nodes' /etc/kvnode/secrets;
	// token the admin token in it.
	secrets string
	token   string
	exits   exitLog
	// stopEvents ends the docker events watcher; eventsDone closes when it
	// has.
	stopEvents context.CancelFunc
	eventsDone chan struct{}
	// archive holds the logs of the node's containers that Replace
	// removed; lost records a log that could not be kept.
	mu      sync.Mutex
	archive map[string]string
	lost    map[string]error
}

var _ Cluster = (*Docker)(nil)

// DockerAvailable reports whether docker and docker-compose can be used.
func DockerAvailable(ctx context.Context) bool {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "docker", "info").Run() == nil
}

// StartDocker brings a compose project up on free loopback ports and waits
// until every node answers.
func StartDocker(ctx context.Context, opts DockerOptions) (*Docker, error) {
	d := &Docker{opts: opts, ports: map[string]int{}, fps: map[string]string{}, ids: map[string]string{}, archive: map[string]string{}, lost: map[string]error{}}
	secrets, err := os.MkdirTemp("", "kvnode-secrets-")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDocker, err)
	}
	d.secrets = secrets
	if d.token, err = writeSecrets(secrets, d.Nodes()); err != nil {
		_ = os.RemoveAll(secrets)
		return nil, err
	}
	d.env = append(os.Environ(), "KVNODE_IMAGE="+opts.Image, "KVNODE_UNSAFE_LOCAL_READS="+strconv.FormatBool(opts.UnsafeLocalReads),
		"KVNODE_SECRETS_DIR="+secrets)
	if opts.ReapAfter > 0 {
		d.env = append(d.env, "KVNODE_REAP_AFTER="+opts.ReapAfter.String())
	}
	if opts.LogStore != "" {
		d.env = append(d.env, "KVNODE_LOG_STORE="+opts.LogStore)
	}
	for i, n := range d.Nodes() {
		p, err := freePort()
		if err != nil {
			_ = os.RemoveAll(secrets)
			return nil, err
		}
		d.ports[n] = p
		d.env = append(d.env, fmt.Sprintf("KVNODE_RPC_PORT%d=%d", i+1, p))
		if opts.Failpoints {
			fp, err := freePort()
			if err != nil {
				return nil, err
			}
			d.fps[n] = fmt.Sprintf("127.0.0.1:%d", fp)
			d.env = append(d.env, fmt.Sprintf("KVNODE_FP_PORT%d=%d", i+1, fp))
		}
	}
	if err := d.watchExits(time.Now().Add(-time.Second)); err != nil {
		return nil, err
	}
	if _, err := d.compose(ctx, 3*time.Minute, "up", "-d", "--no-build"); err != nil {
		_ = d.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	for _, n := range d.Nodes() {
		out, err := d.compose(ctx, time.Minute, "ps", "-q", n)
		if err != nil {
			_ = d.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("%w: no container for %s: %w", ErrDocker, n, err)
		}
		if strings.TrimSpace(out) == "" {
			_ = d.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("%w: no container for %s", ErrDocker, n)
		}
		d.ids[n] = strings.TrimSpace(out)
	}
	if err := WaitReady(ctx, d, 60*time.Second); err != nil {
		_ = d.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	if err := probeFailpoints(ctx, d.fps, 30*time.Second); err != nil {
		_ = d.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return d, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0") //nolint:noctx // a loopback IP literal: no lookup or wait for a context to bound
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Name implements Cluster.
func (d *Docker) Name() string { return "docker" }

// AdminToken implements Cluster.
func (d *Docker) AdminToken() string { return d.token }

// Nodes implements Cluster.
func (d *Docker) Nodes() []string { return []string{"node1", "node2", "node3"} }

// Addr implements Cluster.
func (d *Docker) Addr(node string) string { return fmt.Sprintf("127.0.0.1:%d", d.ports[node]) }

func (d *Docker) run(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = d.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%w: %s %s: %w: %s", ErrDocker, name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String() + errb.String(), nil
}

func (d *Docker) compose(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	files := []string{"-p", d.opts.Project, "-f", d.opts.ComposeFile}
	for _, f := range d.opts.Overrides {
		files = append(files, "-f", f)
	}
	return d.run(ctx, timeout, "docker-compose", append(files, args...)...)
}

// Failpoints implements Cluster.
func (d *Docker) Failpoints() bool { return d.opts.Failpoints }

// Failpoint implements Cluster.
func (d *Docker) Failpoint(ctx context.Context, node, name, term string) error {
	if !d.opts.Failpoints {
		return ErrUnsupported
	}
	return setFailpoint(ctx, d.fps[node], name, term)
}

func (d *Docker) docker(ctx context.Context, args ...string) error {
	_, err := d.run(ctx, time.Minute, "docker", args...)
	return err
}

// Kill implements Cluster.
func (d *Docker) Kill(ctx context.Context, node string) error {
	undo := d.exits.expectExit(node)
	if err := d.docker(ctx, "kill", "-s", "KILL", d.ids[node]); err != nil {
		undo()
		return err
	}
	return nil
}

// dieEvent is the part of a docker "die" event the harness reads.
type dieEvent struct {
	TimeNano int64 `json:"timeNano"`
	Actor    struct {
		Attributes map[string]string `json:"Attributes"`
	} `json:"Actor"`
}

// watchExits follows docker's die events of the project's containers from
// since until Close, recording each container exit with its status.
func (d *Docker) watchExits(since time.Time) error {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "docker", "events", "--since", strconv.FormatInt(since.Unix(), 10),
		"--filter", "type=container", "--filter", "event=die",
		"--filter", "label=com.docker.compose.project="+d.opts.Project, "--format", "{{json .}}")
	cmd.Env = d.env
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		cancel()
		return fmt.Errorf("%w: docker events: %w", ErrDocker, err)
	}
	d.stopEvents, d.eventsDone = cancel, make(chan struct{})
	go func() {
		defer close(d.eventsDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev dieEvent
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			node := ev.Actor.Attributes["com.docker.compose.service"]
			status, err := strconv.Atoi(ev.Actor.Attributes["exitCode"])
			if node == "" || err != nil {
				continue
			}
			d.exits.record(node, time.Unix(0, ev.TimeNano), status)
		}
		_ = cmd.Wait()
	}()
	return nil
}

// Exits implements Cluster.
func (d *Docker) Exits() []Exit { return d.exits.list() }

// Start implements Cluster.
func (d *Docker) Start(ctx context.Context, node string) error {
	if err := d.docker(ctx, "start", d.ids[node]); err != nil {
		return err
	}
	return waitNode(ctx, d, node, 60*time.Second)
}

// Pause implements Cluster.
func (d *Docker) Pause(ctx context.Context, node string) error {
	return d.docker(ctx, "pause", d.ids[node])
}

// Resume implements Cluster.
func (d *Docker) Resume(ctx context.Context, node string) error {
	return d.docker(ctx, "unpause", d.ids[node])
}

func (d *Docker) peerNet() string { return d.opts.Project + "_peer" }

// Isolate implements Cluster: the node leaves the peer network, so raft
// and forwarding to and from it stop, while RPC on the client network works.
func (d *Docker) Isolate(ctx context.Context, node string) error {
	return d.docker(ctx, "network", "disconnect", "-f", d.peerNet(), d.ids[node])
}

// Rejoin implements Cluster.
func (d *Docker) Rejoin(ctx context.Context, node string) error {
	return d.docker(ctx, "network", "connect", "--alias", node+"-peer", d.peerNet(), d.ids[node])
}

// Replace implements Cluster: container and volume go, a new container
// with an empty volume takes the node's name. The old container's log is
// kept (FullLogs, SaveLogs).
func (d *Docker) Replace(ctx context.Context, node string) error {
	if running, err := d.running(ctx, node); err != nil {
		return err
	} else if running {
		if err := d.Kill(ctx, node); err != nil {
			return err
		}
	}
	d.keepLog(ctx, node)
	if _, err := d.compose(ctx, time.Minute, "rm", "-s", "-f", node); err != nil {
		return err
	}
	vol := d.opts.Project + "_data" + strings.TrimPrefix(node, "node")
	if err := d.docker(ctx, "volume", "rm", vol); err != nil {
		return err
	}
	if _, err := d.compose(ctx, time.Minute, "up", "-d", "--no-build", node); err != nil {
		return err
	}
	out, err := d.compose(ctx, time.Minute, "ps", "-q", node)
	if err != nil {
		return err
	}
	d.ids[node] = strings.TrimSpace(out)
	return waitNode(ctx, d, node, 60*time.Second)
}

// running asks docker whether the node's container runs.
func (d *Docker) running(ctx context.Context, node string) (bool, error) {
	out, err := d.run(ctx, 20*time.Second, "docker", "inspect", "-f", "{{.State.Running}}", d.ids[node])
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(out) == "true", nil
}

// keepLog archives the log of the node's current container before it is
// removed.
func (d *Docker) keepLog(ctx context.Context, node string) {
	out, err := d.run(ctx, time.Minute, "docker", "logs", d.ids[node])
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.lost[node] = fmt.Errorf("log of container %.12s lost before its removal: %w", d.ids[node], err)
		return
	}
	d.archive[node] += fmt.Sprintf("%s=== container %.12s removed by the harness at %s ===\n", out, d.ids[node], time.Now().UTC().Format(time.RFC3339Nano))
}

// Logs implements Cluster.
func (d *Docker) Logs(ctx context.Context, node string) (string, error) {
	return d.run(ctx, 20*time.Second, "docker", "logs", "--tail", "300", d.ids[node])
}

// FullLogs implements Cluster: the logs of every container the node has
// had, oldest first. An error says a log was lost; what remains is
// returned with it.
func (d *Docker) FullLogs(ctx context.Context, node string) (string, error) {
	out, err := d.run(ctx, time.Minute, "docker", "logs", d.ids[node])
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.archive[node] + out, errors.Join(d.lost[node], err)
}

// SaveLogs writes every node's full log to dir.
func (d *Docker) SaveLogs(ctx context.Context, dir string) {
	for _, n := range d.Nodes() {
		out, err := d.FullLogs(ctx, n)
		if err != nil {
			out += fmt.Sprintf("\n=== harness: %v ===\n", err)
		}
		_ = os.WriteFile(filepath.Join(dir, n+".log"), []byte(out), 0o644)
	}
}

// Close implements Cluster: everything the project created goes. Exits
// from here on are not recorded.
func (d *Docker) Close(ctx context.Context) error {
	if d.stopEvents != nil {
		d.stopEvents()
		<-d.eventsDone
	}
	_, err := d.compose(context.WithoutCancel(ctx), 2*time.Minute, "down", "-v", "--remove-orphans", "-t", "2")
	_ = os.RemoveAll(d.secrets)
	return err
}
