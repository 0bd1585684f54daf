package clustertest

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/cluster"
)

// ReconcileInterval is the harness leader's reconcile period: short, so
// membership tests converge fast.
const ReconcileInterval = 100 * time.Millisecond

// holdGossipPort reserves a loopback port for both TCP and UDP, which
// memberlist binds together, and returns it with the function that frees
// it. The seeds must be known before any node starts, so the port cannot be
// left to memberlist (port 0); holding it until just before the node binds
// it keeps the kernel from handing it to another socket (an outgoing
// connection's ephemeral port) meanwhile.
func holdGossipPort(t testing.TB) (int, func()) {
	t.Helper()
	for range 50 {
		tl, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := tl.Addr().(*net.TCPAddr).Port
		ul, err := new(net.ListenConfig).ListenPacket(t.Context(), "udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			return port, func() { _ = tl.Close(); _ = ul.Close() }
		}
		_ = tl.Close()
	}
	t.Fatal("clustertest: no port free for both TCP and UDP")
	return 0, nil
}

// gossipConfig switches node n from static peers to gossip discovery.
func (c *Cluster) gossipConfig(n *Node, cfg *cluster.Config, opts *cluster.Options) {
	cfg.Peers = nil
	if n.Initial {
		cfg.BootstrapExpect = c.opts.BootstrapExpect
	}
	var seeds []string
	for _, m := range c.Nodes {
		if m.Initial {
			seeds = append(seeds, m.GossipAddr)
		}
	}
	cfg.Gossip = cluster.GossipConfig{Bind: n.GossipAddr, Join: seeds, Profile: "local"}
	opts.ReconcileInterval = ReconcileInterval
	opts.GossipTune = func(mc *memberlist.Config) {
		// Failure detection within about a second on loopback, yet slow
		// enough that a loaded 2-core machine running -race does not
		// declare live nodes dead.
		mc.ProbeInterval = 300 * time.Millisecond
		mc.ProbeTimeout = 200 * time.Millisecond
		mc.GossipInterval = 50 * time.Millisecond
		mc.PushPullInterval = 2 * time.Second
		mc.SuspicionMult = 3
		mc.TCPTimeout = 2 * time.Second
	}
}

// AddNode starts one more node that joins the running gossip cluster (it
// does not bootstrap) and returns its index. tune, if not nil, adjusts its
// config after the harness's Tune.
func (c *Cluster) AddNode(tune func(*cluster.Config)) int {
	c.t.Helper()
	if !c.opts.Gossip {
		c.t.Fatal("clustertest: AddNode needs Options.Gossip")
	}
	ln := c.newNode(false)
	n := c.Nodes[len(c.Nodes)-1]
	n.tune = tune
	c.start(n, ln)
	return n.Index
}

// Configuration returns node i's latest raft configuration as "id:voter"
// / "id:nonvoter" entries, sorted.
func (c *Cluster) Configuration(i int) []string {
	c.t.Helper()
	f := c.Nodes[i].Node.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		c.t.Fatalf("configuration of node %d: %v", i, err)
	}
	var out []string
	for _, s := range f.Configuration().Servers {
		kind := "nonvoter"
		if s.Suffrage == raft.Voter {
			kind = "voter"
		}
		out = append(out, string(s.ID)+":"+kind)
	}
	slices.Sort(out)
	return out
}

// WaitConfiguration polls the leader's raft configuration until it equals
// want (entries as Configuration returns them) and returns the leader.
func (c *Cluster) WaitConfiguration(want ...string) int {
	c.t.Helper()
	slices.Sort(want)
	leader := -1
	c.Poll("wait for configuration "+strings.Join(want, ","), func() string {
		leader = -1
		for _, n := range c.Live() {
			if n.Node.IsLeader() {
				leader = n.Index
			}
		}
		if leader < 0 {
			return "no leader"
		}
		got := c.Configuration(leader)
		if !slices.Equal(got, want) {
			return fmt.Sprintf("leader %s has %v", c.Nodes[leader].ID, got)
		}
		return ""
	})
	return leader
}

// AliveMembers returns the ids node i's gossip sees alive.
func (c *Cluster) AliveMembers(i int) []string {
	var out []string
	for _, m := range c.Nodes[i].Node.GossipMembers() {
		if m.State == "alive" {
			out = append(out, m.ID)
		}
	}
	return out
}
