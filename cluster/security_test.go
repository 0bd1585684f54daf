package cluster_test

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
)

func gossipKey(b byte) string {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b + byte(i)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// A cluster with an encrypted gossip pool and mutual TLS on the cluster
// port refuses a node with the wrong gossip key (it never becomes a member)
// and a node with the right key but a certificate from another CA (it is
// seen in gossip but never added to raft, and cannot write).
func TestSecurity_WrongGossipKeyOrCertificateCannotJoin(t *testing.T) {
	certs := cluster.WriteTestCerts(t, t.TempDir())
	logger, logs := cluster.NewLogBook()
	c := clustertest.New(t, clustertest.Options{Gossip: true, Logger: logger, Tune: func(cfg *cluster.Config) {
		cfg.Gossip.EncryptKey = gossipKey(1)
		cfg.TLS = certs.Good
	}})
	want := []string{"node0:voter", "node1:voter", "node2:voter"}
	c.WaitConfiguration(want...)
	c.WaitLeader()

	t.Run("wrong gossip key", func(t *testing.T) {
		bad := c.AddNode(func(cfg *cluster.Config) { cfg.Gossip.EncryptKey = gossipKey(2) })
		c.Poll("the intruder's join fails", logs.WaitFor("node="+c.Nodes[bad].ID, "gossip join failed"))
		c.Poll("a member logs the refusal", logs.WaitFor("refused gossip", "remote=127.0.0.1:"))
		for i := range 3 {
			if got := c.AliveMembers(i); !slices.Equal(got, []string{"node0", "node1", "node2"}) {
				t.Fatalf("node%d sees members %v", i, got)
			}
		}
		if got := c.AliveMembers(bad); !slices.Equal(got, []string{c.Nodes[bad].ID}) {
			t.Fatalf("intruder sees members %v", got)
		}
		c.Kill(bad)
	})

	t.Run("wrong certificate", func(t *testing.T) {
		bad := c.AddNode(func(cfg *cluster.Config) { cfg.TLS = certs.Rogue })
		id := c.Nodes[bad].ID
		// Gossip admits it (right key), so the leader considers it, checks
		// its cluster port, and refuses.
		c.Poll("the leader refuses to add it", logs.WaitFor("not adding gossip member to raft", "member="+id))
		c.Poll("the intruder logs the refused handshake", logs.WaitFor("node="+id, "refused cluster connection"))
		leader := c.WaitConfiguration(want...)
		if got := c.Configuration(leader); !slices.Equal(got, want) {
			t.Fatalf("configuration %v", got)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		err := c.Store(bad, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{item("intruder", "x")})
		if !errors.Is(err, cluster.ErrNoLeader) {
			t.Fatalf("intruder's write: %v (want ErrNoLeader)", err)
		}
		if got := readLocal(c, leader, "mem", "intruder"); got != "" {
			t.Fatalf("intruder's write reached the cluster: %q", got)
		}
	})
}

// Four nodes started at the same instant with bootstrap_expect 3 form one
// cluster (three voters bootstrap, the fourth is added as a replica); a
// voter leaving with leave_on_terminate is removed from raft at once and
// the replica takes its vote.
func TestGossip_ConcurrentStartOneClusterAndLeaveOnTerminate(t *testing.T) {
	logger, logs := cluster.NewLogBook()
	c := clustertest.New(t, clustertest.Options{Gossip: true, Size: 4, BootstrapExpect: 3, Logger: logger,
		Tune: func(cfg *cluster.Config) { cfg.LeaveOnTerminate = true }})
	leader := c.WaitConfiguration("node0:voter", "node1:voter", "node2:voter", "node3:nonvoter")
	want := c.Configuration(leader)
	c.Poll("all four share one configuration and leader", func() string {
		lid, _ := c.Nodes[leader].Node.Leader()
		for i := range 4 {
			if got := c.Configuration(i); !slices.Equal(got, want) {
				return c.Nodes[i].ID + " has another configuration"
			}
			if id, _ := c.Nodes[i].Node.Leader(); id != lid {
				return c.Nodes[i].ID + " follows " + id
			}
		}
		return ""
	})
	if logs.Find("node=node3", "bootstrapped a new cluster") != "" {
		t.Fatal("node3 bootstrapped although it was not among the lowest ids")
	}

	// The leader leaves: it hands over leadership, announces its departure
	// and is removed from raft without waiting for reap_after (5m).
	gone := c.Nodes[leader].ID
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Nodes[leader].Node.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	c.Kill(leader)
	var rest []string
	for _, n := range c.Nodes {
		if n.ID != gone {
			rest = append(rest, n.ID+":voter")
		}
	}
	now := c.WaitConfiguration(rest...)
	c.Poll("the new leader lists "+gone+" as left", func() string {
		for _, m := range c.Nodes[now].Node.GossipMembers() {
			if m.ID == gone {
				if m.State != "left" {
					return "state " + m.State
				}
				return ""
			}
		}
		return "not listed"
	})
}
