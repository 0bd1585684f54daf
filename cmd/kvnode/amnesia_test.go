package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/client"
	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/internal/cli"
)

// proc is a kvnode child process (TestMain runs main in it).
type proc struct {
	cfg    string
	rpc    string
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), "KVNODE_TEST_MAIN="+strings.Join([]string{"serve", "-c", p.cfg}, "\n"))
	p.stderr = &syncBuffer{}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan struct{})
	cmd, exited := p.cmd, p.exited
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(p.kill)
}

// kill stops the process at once (SIGKILL), as a crash does.
func (p *proc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
	}
}

// status asks the node for its status; ok is false when it does not answer.
func (p *proc) status() (cluster.Status, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	if err := cli.Status(ctx, []string{"--rpc", p.rpc, "--json", "--timeout", "500ms"}, &out, io.Discard); err != nil {
		return cluster.Status{}, false
	}
	var st cluster.Status
	return st, json.Unmarshal(out.Bytes(), &st) == nil
}

// read reads key from storage through the node; "" when absent or on error.
func (p *proc) read(storage, key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, p.rpc)
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }()
	got, err := c.MGet(ctx, storage, key)
	return string(got[key]), err
}

// The amnesia scenario against real processes, in static-peers and
// gossip mode: L leads; B is stopped; K is written through L (L and C have
// it); C is killed and its data dir deleted, L is killed; C restarts empty
// and B comes back. While L is down no node may lead without K; once L is
// back every node reads K. B is killed and restarted rather than paused:
// a paused process's kernel still buffers what L sends it, so on SIGCONT
// it would read K from its socket (the in-process test in cluster/ cuts B
// off instead).
func TestProcesses_WipedVoterNeverLosesAnAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three kvnode processes per mode")
	}
	for _, mode := range []string{"static", "gossip"} {
		t.Run(mode, func(t *testing.T) {
			ports := freePorts(t, 9)
			var peers, seeds []string
			for i := range 3 {
				peers = append(peers, fmt.Sprintf("{id: n%d, address: \"127.0.0.1:%d\"}", i, ports[3+i]))
				seeds = append(seeds, fmt.Sprintf("\"127.0.0.1:%d\"", ports[6+i]))
			}
			procs := make([]*proc, 3)
			dirs := make([]string, 3)
			for i := range procs {
				dirs[i] = filepath.Join(t.TempDir(), "data")
				discovery := "peers: [" + strings.Join(peers, ", ") + "]"
				if mode == "gossip" {
					discovery = fmt.Sprintf("bootstrap_expect: 3\n  gossip: {bind: \"127.0.0.1:%d\", join: [%s], profile: local}",
						ports[6+i], strings.Join(seeds, ", "))
				}
				procs[i] = &proc{rpc: fmt.Sprintf("tcp://127.0.0.1:%d", ports[i]), cfg: writeConfig(t, fmt.Sprintf(`
version: "3"
rpc: {listen: "tcp://127.0.0.1:%d"}
kv:
  lin: {driver: memory, consistency: linearizable}
  loc: {driver: memory}
cluster:
  node_id: n%d
  data_dir: %q
  reap_after: 1h
  raft: {bind: "127.0.0.1:%d", heartbeat_timeout: 300ms, election_timeout: 300ms, leader_lease_timeout: 150ms}
  %s
`, ports[i], i, dirs[i], ports[3+i], discovery))}
				procs[i].start(t)
			}
			logs := func() string {
				var b strings.Builder
				for i, p := range procs {
					fmt.Fprintf(&b, "--- n%d:\n%s\n", i, p.stderr)
				}
				return b.String()
			}
			leader := -1
			if !poll(30*time.Second, func() bool {
				for i, p := range procs {
					if st, ok := p.status(); ok && st.Role == cluster.RoleLeader && len(st.Members) == 3 {
						leader = i
						return true
					}
				}
				return false
			}) {
				t.Fatalf("no leader of three members:\n%s", logs())
			}
			l, b, c := procs[leader], procs[(leader+1)%3], procs[(leader+2)%3]
			cIdx := (leader + 2) % 3
			if !poll(10*time.Second, func() bool { st, ok := c.status(); return ok && st.FSMAppliedIndex > 0 }) {
				t.Fatalf("C never caught up:\n%s", logs())
			}

			b.kill()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			cl, err := client.Dial(ctx, l.rpc)
			if err != nil {
				t.Fatal(err)
			}
			err = cl.Set(ctx, "loc", client.Item{Key: "K", Value: []byte("acknowledged")})
			_ = cl.Close()
			cancel()
			if err != nil {
				t.Fatalf("write K: %v\n%s", err, logs())
			}
			if !poll(10*time.Second, func() bool { v, _ := c.read("loc", "K"); return v == "acknowledged" }) {
				t.Fatalf("C never applied K:\n%s", logs())
			}
			c.kill()
			if err := os.RemoveAll(dirs[cIdx]); err != nil {
				t.Fatal(err)
			}
			l.kill()
			c.start(t)
			b.start(t)

			// L is down: a leader now could only have won with the vote of
			// C's former self, and would not have K.
			deadline := time.Now().Add(4 * time.Second)
			for time.Now().Before(deadline) {
				for _, p := range []*proc{b, c} {
					if st, ok := p.status(); ok && st.Role == cluster.RoleLeader {
						if v, _ := p.read("loc", "K"); v != "acknowledged" {
							t.Fatalf("%s leads without the acknowledged write K:\n%s", st.NodeID, logs())
						}
					}
				}
				time.Sleep(50 * time.Millisecond)
			}

			l.start(t)
			if !poll(30*time.Second, func() bool {
				for _, p := range procs {
					if v, err := p.read("lin", "K"); err != nil || v != "" {
						return false // the linearizable storage was never written: absent everywhere
					}
					if v, _ := p.read("loc", "K"); v != "acknowledged" {
						return false
					}
				}
				return true
			}) {
				t.Fatalf("K is not on every node after L returned:\n%s", logs())
			}
			// C came back as a new incarnation and a voter.
			if !poll(30*time.Second, func() bool {
				st, ok := c.status()
				if !ok || st.Incarnation == "" {
					return false
				}
				for _, m := range st.Members {
					if m.ID == st.NodeID && m.Incarnation == st.Incarnation && m.Suffrage == "voter" {
						return true
					}
				}
				return false
			}) {
				st, _ := c.status()
				t.Fatalf("C is not a voter at its new incarnation: %+v\n%s", st, logs())
			}
		})
	}
}
