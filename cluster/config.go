package cluster

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Peer is a voter known before the first start: the static alternative to
// gossip discovery.
type Peer struct {
	ID      string `yaml:"id"`
	Address string `yaml:"address"`
}

// Config configures a Node. Zero durations take the defaults.
type Config struct {
	NodeID  string `yaml:"node_id"`
	DataDir string `yaml:"data_dir"`

	Raft RaftConfig `yaml:"raft"`

	// Peers lists every voter of a new cluster (this node included). On the
	// first start each node bootstraps with exactly this configuration,
	// which is safe because the configurations are identical. Ignored once
	// the node has raft state.
	Peers []Peer `yaml:"peers"`

	// ApplyTimeout bounds a write from proposal to applied.
	ApplyTimeout time.Duration `yaml:"apply_timeout"`

	// SweepInterval is how often the leader proposes Expire events for keys
	// whose deadline passed; SweepBatch caps keys per event.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	SweepBatch    int           `yaml:"sweep_batch"`

	// Unsafe holds switches that break guarantees on purpose, so the
	// jepsen harness can prove its checker catches the anomaly.
	Unsafe UnsafeConfig `yaml:"unsafe"`
}

// UnsafeConfig switches off safety for fault-injection tests. Never set
// these in production: the node logs an error at start when one is on.
type UnsafeConfig struct {
	// LocalLinearizableReads serves "linearizable" reads from local state
	// without confirming the leader's index: stale reads become possible.
	LocalLinearizableReads bool `yaml:"local_linearizable_reads"`
}

// RaftConfig holds the raft transport and timing settings.
type RaftConfig struct {
	Bind      string `yaml:"bind"`
	Advertise string `yaml:"advertise"`

	HeartbeatTimeout   time.Duration `yaml:"heartbeat_timeout"`
	ElectionTimeout    time.Duration `yaml:"election_timeout"`
	LeaderLeaseTimeout time.Duration `yaml:"leader_lease_timeout"`
	CommitTimeout      time.Duration `yaml:"commit_timeout"`
	SnapshotThreshold  uint64        `yaml:"snapshot_threshold"`
	SnapshotInterval   time.Duration `yaml:"snapshot_interval"`
	TrailingLogs       uint64        `yaml:"trailing_logs"`
}

// InitDefaults fills unset fields. The timeouts suit a LAN or one host:
// failover takes about one election timeout plus a randomised term of it.
func (c *Config) InitDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Raft.HeartbeatTimeout, 500*time.Millisecond)
	def(&c.Raft.ElectionTimeout, 500*time.Millisecond)
	def(&c.Raft.LeaderLeaseTimeout, 250*time.Millisecond)
	def(&c.Raft.CommitTimeout, 20*time.Millisecond)
	def(&c.Raft.SnapshotInterval, 120*time.Second)
	def(&c.ApplyTimeout, 10*time.Second)
	def(&c.SweepInterval, time.Second)
	if c.Raft.SnapshotThreshold == 0 {
		c.Raft.SnapshotThreshold = 8192
	}
	if c.Raft.TrailingLogs == 0 {
		c.Raft.TrailingLogs = 10240
	}
	if c.SweepBatch <= 0 {
		c.SweepBatch = 512
	}
	if c.Raft.Advertise == "" {
		c.Raft.Advertise = c.Raft.Bind
	}
}

// Validate reports every problem at once, each naming its field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: cluster.%s: %s", ErrConfig, field, fmt.Sprintf(format, args...)))
	}
	if strings.TrimSpace(c.NodeID) == "" {
		bad("node_id", "missing")
	}
	if c.DataDir == "" {
		bad("data_dir", "missing")
	}
	if _, _, err := net.SplitHostPort(c.Raft.Bind); err != nil {
		bad("raft.bind", "%q: %v", c.Raft.Bind, err)
	}
	if host, port, err := net.SplitHostPort(c.Raft.Advertise); err != nil {
		bad("raft.advertise", "%q: %v", c.Raft.Advertise, err)
	} else if host == "" || net.ParseIP(host).IsUnspecified() || port == "0" && c.Raft.Bind != c.Raft.Advertise {
		bad("raft.advertise", "%q is not an address other nodes can reach", c.Raft.Advertise)
	}
	if c.Raft.LeaderLeaseTimeout > c.Raft.HeartbeatTimeout {
		bad("raft.leader_lease_timeout", "%s exceeds heartbeat_timeout %s", c.Raft.LeaderLeaseTimeout, c.Raft.HeartbeatTimeout)
	}
	if c.Raft.ElectionTimeout < c.Raft.HeartbeatTimeout {
		bad("raft.election_timeout", "%s is below heartbeat_timeout %s", c.Raft.ElectionTimeout, c.Raft.HeartbeatTimeout)
	}
	seen := map[string]bool{}
	for i, p := range c.Peers {
		if p.ID == "" || seen[p.ID] {
			bad(fmt.Sprintf("peers[%d].id", i), "missing or duplicate %q", p.ID)
		}
		seen[p.ID] = true
		if _, _, err := net.SplitHostPort(p.Address); err != nil {
			bad(fmt.Sprintf("peers[%d].address", i), "%q: %v", p.Address, err)
		}
	}
	if len(c.Peers) > 0 && !seen[c.NodeID] {
		bad("peers", "does not list this node %q", c.NodeID)
	}
	return errors.Join(errs...)
}
