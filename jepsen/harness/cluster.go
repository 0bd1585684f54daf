package harness

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/kvnode/kvnode/client"
)

// Storages are the four storages of jepsen/docker/kvnode.yaml.
var Storages = []string{"memory_local", "memory_lin", "boltdb_local", "boltdb_lin"}

// Linearizable reports whether a storage is configured with linearizable reads.
func Linearizable(storage string) bool { return strings.HasSuffix(storage, "_lin") }

// Cluster is a running three-node kvnode cluster the harness can hurt.
// Faults never overlap: the nemesis heals one before injecting the next.
type Cluster interface {
	// Name says which backend runs the cluster ("docker" or "local").
	Name() string
	// Nodes are the node ids (node1, node2, node3).
	Nodes() []string
	// Addr is the node's RPC address on the loopback interface.
	Addr(node string) string
	// AdminToken is the nodes' rpc.admin_token, for the admin calls that
	// export state (FetchState).
	AdminToken() string
	// Kill stops the node with SIGKILL; Start starts it again and leaves
	// a running node as it is.
	Kill(ctx context.Context, node string) error
	Start(ctx context.Context, node string) error
	// Pause freezes the node (SIGSTOP or docker pause); Resume thaws it.
	Pause(ctx context.Context, node string) error
	Resume(ctx context.Context, node string) error
	// Isolate cuts the node's raft traffic while its RPC port stays
	// reachable; Rejoin restores it. ErrUnsupported where impossible.
	Isolate(ctx context.Context, node string) error
	Rejoin(ctx context.Context, node string) error
	// Replace kills the node, removes its data and starts an empty one under
	// the same name at once, which must catch up from the others.
	Replace(ctx context.Context, node string) error
	// Failpoints reports whether the nodes serve kvnode's fault-injection
	// endpoint (a failpoint build); Failpoint sets one on a node, or clears
	// it when term is "" (ErrUnsupported without failpoints).
	Failpoints() bool
	Failpoint(ctx context.Context, node, name, term string) error
	// Logs returns the tail of the node's log; FullLogs all of it (every
	// run of the node since it was last replaced).
	Logs(ctx context.Context, node string) (string, error)
	FullLogs(ctx context.Context, node string) (string, error)
	// Exits lists every time a node's process ended so far, telling the
	// harness's own kills from the rest.
	Exits() []Exit
	// Close tears the cluster down, data included.
	Close(ctx context.Context) error
}

// WaitReady polls every node until it answers a local read, at most d.
func WaitReady(ctx context.Context, c Cluster, d time.Duration) error {
	for _, n := range c.Nodes() {
		if err := waitNode(ctx, c, n, d); err != nil {
			return err
		}
	}
	return nil
}

func waitNode(ctx context.Context, c Cluster, node string, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last error
	for i := 0; i < 1000 && time.Now().Before(deadline); i++ {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		cl, err := client.Dial(cctx, c.Addr(node), client.WithPoolSize(1))
		if err == nil {
			_, err = cl.MGet(cctx, "memory_local", "ready-probe")
			_ = cl.Close()
		}
		cancel()
		if err == nil {
			return nil
		}
		last = err
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("%w: %s after %s: %w", ErrNotReady, node, d, last)
}

// WaitWritable polls until a linearizable write through any node is
// acknowledged, at most d: the cluster has a leader and a quorum.
func WaitWritable(ctx context.Context, c Cluster, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last error
	for i := 0; i < 1000 && time.Now().Before(deadline); i++ {
		for _, n := range c.Nodes() {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			cl, err := client.Dial(cctx, c.Addr(n), client.WithPoolSize(1))
			if err == nil {
				err = cl.Set(cctx, "memory_lin", client.Item{Key: "writable-probe", Value: []byte(n)})
				_ = cl.Close()
			}
			cancel()
			if err == nil {
				return nil
			}
			last = err
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("%w: no write acknowledged within %s: %w", ErrNotReady, d, last)
}

// leaderLine matches raft's state changes in a node's JSON log.
var leaderLine = regexp.MustCompile(`"msg":"entering (leader|follower|candidate) state"`)

// FindLeader names the leader: from the nodes' status where the server has
// the admin service, otherwise the node whose latest raft state change in
// its log is "entering leader state". Two claimants in the logs mean a
// deposed leader has not noticed yet; the caller retries.
func FindLeader(ctx context.Context, c Cluster) (string, error) {
	if l, answered, err := leaderByStatus(ctx, c); answered {
		return l, err
	}
	var leaders []string
	for _, n := range c.Nodes() {
		logs, err := c.Logs(ctx, n)
		if err != nil {
			continue
		}
		m := leaderLine.FindAllStringSubmatch(logs, -1)
		if len(m) > 0 && m[len(m)-1][1] == "leader" {
			leaders = append(leaders, n)
		}
	}
	if len(leaders) != 1 {
		return "", fmt.Errorf("%w: claimants %v", ErrNoLeader, leaders)
	}
	return leaders[0], nil
}

// WaitLeader polls FindLeader for at most d.
func WaitLeader(ctx context.Context, c Cluster, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	err := ErrNoLeader
	for i := 0; i < 500 && time.Now().Before(deadline); i++ {
		var l string
		if l, err = FindLeader(ctx, c); err == nil {
			return l, nil
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return "", ctx.Err()
		}
	}
	return "", err
}

// crashMarkers are what a Go program prints when it dies of a bug.
var crashMarkers = []string{"panic: ", "fatal error: ", "SIGSEGV"}

// Crashes scans every node's full log for panics and fatal errors; each
// crash is an anomaly whatever the checks say, with the first lines of the
// trace as evidence. A log that cannot be read is an anomaly too: its
// crashes would go unseen.
func Crashes(ctx context.Context, c Cluster) []Anomaly {
	var out []Anomaly
	for _, n := range c.Nodes() {
		logs, err := c.FullLogs(ctx, n)
		if err != nil {
			out = append(out, Anomaly{Check: "crash", Detail: fmt.Sprintf("%s: log unreadable, its crashes cannot be checked: %v", n, err)})
		}
		for _, m := range crashMarkers {
			i := strings.Index(logs, m)
			if i < 0 {
				continue
			}
			trace := logs[i:min(len(logs), i+1200)]
			out = append(out, Anomaly{Check: "crash", Detail: fmt.Sprintf("%s: %s", n, strings.Join(strings.Fields(trace), " "))})
			break
		}
	}
	return out
}

// sleepCtx sleeps d unless ctx ends first; it reports whether ctx is alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// isUnsupported reports whether a fault cannot be injected here.
func isUnsupported(err error) bool { return errors.Is(err, ErrUnsupported) }
