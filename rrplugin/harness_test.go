package rrplugin_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvnode/kvnode/client"
	"github.com/kvnode/kvnode/internal/testsvc"
)

// The tests run real processes: kvnode built from this tree (../cmd/kvnode)
// and a RoadRunner binary built from modules with this plugin
// (testdata/rr), the way velox builds one. Both are built once per `go
// test` run, into a temporary directory, by the go command running the
// test.

type binaries struct {
	kvnode, rr string
}

// binDir is where buildOnce put the binaries, if a test asked for them.
var binDir string

// TestMain removes the binaries the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var buildOnce = sync.OnceValues(func() (binaries, error) {
	dir, err := os.MkdirTemp("", "kvnode-rrplugin-bin-")
	if err != nil {
		return binaries{}, err
	}
	binDir = dir
	b := binaries{kvnode: filepath.Join(dir, "kvnode"), rr: filepath.Join(dir, "rr")}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = goBuild("..", b.kvnode, "./cmd/kvnode") })
	wg.Go(func() { errs[1] = goBuild("testdata/rr", b.rr, ".") })
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return binaries{}, err
		}
	}
	return b, nil
})

func goBuild(dir, out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", pkg, dir, err, b)
	}
	return nil
}

func bins(t testing.TB) binaries {
	t.Helper()
	b, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// freePorts returns n loopback ports nothing listened on a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

// proc is a process the test started; it is killed when the test ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func start(t testing.TB, name, logPath string, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- %s log (last lines):\n%s", name, tail(logPath, 30))
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// eventually polls cond every 20 ms until it returns "" or the deadline
// passes, and then fails with the last reason.
func eventually(t testing.TB, within time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kvCluster is three kvnode processes forming one raft cluster on loopback.
type kvCluster struct {
	bin   string
	nodes []*kvNode
}

type kvNode struct {
	id   string
	rpc  string // tcp://127.0.0.1:port
	proc *proc
}

// clusterStorages is the kv section of every node: `sessions` and `cache`
// read locally, `strict` linearizably, `pages` passed through to a real
// memcached (which has no TTL: the PHP client's NotImplementedException).
const clusterStorages = `kv:
  sessions: { driver: memory }
  cache:    { driver: memory }
  strict:   { driver: memory, consistency: linearizable }
  pages:    { driver: memcached, config: { addr: ["%s"] } }
`

func startCluster(t testing.TB) *kvCluster {
	t.Helper()
	b := bins(t)
	memcached := testsvc.Memcached(t)
	dir := t.TempDir()
	ports := freePorts(t, 6)
	var peers strings.Builder
	for i := range 3 {
		fmt.Fprintf(&peers, "    - { id: n%d, address: \"127.0.0.1:%d\" }\n", i+1, ports[3+i])
	}
	c := &kvCluster{bin: b.kvnode}
	for i := range 3 {
		id := "n" + strconv.Itoa(i+1)
		cfg := fmt.Sprintf(`version: "3"
rpc: { listen: "tcp://127.0.0.1:%d" }
logs: { level: warn, mode: production }
%scluster:
  node_id: %s
  data_dir: %s
  raft: { bind: "127.0.0.1:%d" }
  peers:
%s`, ports[i], fmt.Sprintf(clusterStorages, memcached), id, filepath.Join(dir, id), ports[3+i], peers.String())
		path := filepath.Join(dir, id+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		n := &kvNode{id: id, rpc: fmt.Sprintf("tcp://127.0.0.1:%d", ports[i])}
		n.proc = start(t, "kvnode "+id, filepath.Join(dir, id+".log"), b.kvnode, "serve", "-c", path)
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		eventually(t, 30*time.Second, func() string {
			if n.proc.exited() {
				t.Fatalf("kvnode %s exited:\n%s", n.id, tail(n.proc.log, 20))
			}
			out, err := exec.Command(b.kvnode, "health", "--rpc", n.rpc, "--ready").CombinedOutput()
			if err != nil {
				return fmt.Sprintf("kvnode %s not ready: %v %s", n.id, err, out)
			}
			return ""
		})
	}
	return c
}

// leader returns the node the others follow.
func (c *kvCluster) leader(t testing.TB) *kvNode {
	t.Helper()
	var found *kvNode
	eventually(t, 10*time.Second, func() string {
		for _, n := range c.nodes {
			if n.proc.exited() {
				continue
			}
			out, err := exec.Command(c.bin, "status", "--rpc", n.rpc, "--json").Output()
			if err != nil {
				continue
			}
			var st struct {
				Role string `json:"role"`
			}
			if json.Unmarshal(out, &st) == nil && st.Role == "leader" {
				found = n
				return ""
			}
		}
		return "no node says it leads"
	})
	return found
}

// leaderOf returns the id of the leader node n knows, "" for none.
func (c *kvCluster) leaderOf(t testing.TB, n *kvNode) string {
	t.Helper()
	out, err := exec.Command(c.bin, "status", "--rpc", n.rpc, "--json").Output()
	if err != nil {
		t.Fatalf("kvnode status %s: %v", n.id, err)
	}
	var st struct {
		LeaderID string `json:"leader_id"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("kvnode status %s: %v", n.id, err)
	}
	return st.LeaderID
}

// rrServer is a RoadRunner process with the kvnode driver.
type rrServer struct {
	rpc     string
	metrics string
	proc    *proc
}

// startRR starts RoadRunner with kvnode.addrs = addrs and the given kv
// section, and waits until its RPC answers.
func startRR(t testing.TB, addrs []string, extra string) *rrServer {
	t.Helper()
	b := bins(t)
	dir := t.TempDir()
	ports := freePorts(t, 2)
	quoted := make([]string, len(addrs))
	for i, a := range addrs {
		quoted[i] = strconv.Quote(a)
	}
	cfg := fmt.Sprintf(`version: "3"
rpc: { listen: "tcp://127.0.0.1:%d" }
logs: { level: warn, mode: production }
metrics: { address: "127.0.0.1:%d" }
kvnode:
  addrs: [%s]
%s`, ports[0], ports[1], strings.Join(quoted, ", "), extra)
	path := filepath.Join(dir, ".rr.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	rr := &rrServer{
		rpc:     fmt.Sprintf("tcp://127.0.0.1:%d", ports[0]),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[1]),
	}
	rr.proc = start(t, "rr", filepath.Join(dir, "rr.log"), b.rr, "-c", path)
	eventually(t, 30*time.Second, func() string {
		if rr.proc.exited() {
			t.Fatalf("rr exited:\n%s", tail(rr.proc.log, 20))
		}
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(rr.rpc, "tcp://"), time.Second)
		if err != nil {
			return "rr rpc not listening: " + err.Error()
		}
		_ = conn.Close()
		return ""
	})
	return rr
}

// client connects to RoadRunner's RPC, as a PHP worker does through RR_RPC.
func (rr *rrServer) client(t testing.TB) *client.Client {
	t.Helper()
	return dial(t, rr.rpc)
}

func dial(t testing.TB, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.Dial(t.Context(), addr, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// metric returns the value of one series of RoadRunner's /metrics, matched
// by name and label pairs ("storage", "sessions", ...); -1 when absent.
func (rr *rrServer) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rr.metrics, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rr.metrics, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i+1 < len(labels); i += 2 {
		want = append(want, labels[i]+"="+strconv.Quote(labels[i+1]))
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		return v
	}
	return -1
}
