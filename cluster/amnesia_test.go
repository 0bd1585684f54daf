package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
)

// A voter that lost its data dir and restarts under the same node id must
// not help elect a leader that lacks a write it had acknowledged: the
// issue's scenario, in static-peers and in gossip mode. L leads; B is cut
// off (as if paused); K is written (L and C have it); C loses its disk, L
// dies; C comes back empty and B is reachable again. The cluster may refuse
// writes until L returns; it must never forget K.
func TestAmnesia_WipedVoterDoesNotElectALeaderWithoutAnAcknowledgedWrite(t *testing.T) {
	for _, mode := range []string{"static", "gossip"} {
		t.Run(mode, func(t *testing.T) {
			c := clustertest.New(t, clustertest.Options{
				Storages: map[string]string{"mem": "memory"},
				Gossip:   mode == "gossip",
				Tune: func(cfg *cluster.Config) {
					cfg.ReapAfter = time.Hour // the old incarnation goes because it is replaced, not reaped
				},
			})
			if mode == "gossip" {
				c.WaitConfiguration("node0:voter", "node1:voter", "node2:voter")
			}
			l := c.WaitLeader()
			fs := c.Followers(l)
			b, cc := fs[0], fs[1]

			c.Isolate(b)
			c.Retry("write K", func(ctx context.Context) error {
				return c.Store(l, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{item("K", "acknowledged")})
			})
			c.Poll("C applies K", func() string {
				if readLocal(c, cc, "mem", "K") != "acknowledged" {
					return "not yet"
				}
				return ""
			})
			c.Wipe(cc)
			c.Kill(l)
			c.Restart(cc)
			c.Heal(b)

			// While L is down nobody may lead without K: B lacks it and C
			// has nothing, so a leader now could only have won with the
			// vote of C's former self.
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) {
				for _, n := range c.Live() {
					if n.Node.IsLeader() && readLocal(c, n.Index, "mem", "K") != "acknowledged" {
						t.Fatalf("%s leads without the acknowledged write K (the wiped node's vote elected it)", n.ID)
					}
				}
				time.Sleep(20 * time.Millisecond)
			}

			c.Restart(l)
			c.Poll("K readable everywhere once L is back", func() string {
				for _, n := range c.Live() {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					items, err := c.Store(n.Index, "mem", cluster.ReadLinearizable).MGet(ctx, []string{"K"})
					cancel()
					if err != nil {
						return fmt.Sprintf("%s: %v", n.ID, err)
					}
					if len(items) != 1 || string(items[0].Value) != "acknowledged" {
						return fmt.Sprintf("%s reads %v: K lost", n.ID, items)
					}
				}
				return ""
			})
			c.EnsureSame()
			// C is back as a voter under its new incarnation; its former
			// self is gone from the configuration.
			newAddr := c.Nodes[cc].Node.Addr()
			c.Poll("C is a voter again at its new incarnation", func() string {
				leader := c.WaitLeader()
				cf := c.Nodes[leader].Node.Raft().GetConfiguration()
				if err := cf.Error(); err != nil {
					return err.Error()
				}
				var desc []string
				ok := false
				for _, s := range cf.Configuration().Servers {
					desc = append(desc, fmt.Sprintf("%s:%s@%s", s.ID, s.Suffrage, s.Address))
					if string(s.ID) == c.Nodes[cc].ID {
						ok = s.Suffrage == raft.Voter && string(s.Address) == newAddr
					}
				}
				if !ok || len(desc) != 3 {
					return strings.Join(desc, " ")
				}
				return ""
			})
		})
	}
}
