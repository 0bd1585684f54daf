package cluster

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
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

	// BootstrapExpect, with gossip, makes the first BootstrapExpect nodes
	// that find each other bootstrap one new cluster together (see
	// bootstrap.go). An alternative to Peers; zero means this node never
	// bootstraps and waits for a leader to add it.
	BootstrapExpect int `yaml:"bootstrap_expect"`

	// Voters is how many voting members the leader keeps; further nodes
	// found by gossip join as non-voting read replicas. Default 3.
	Voters int `yaml:"voters"`

	// ReapAfter is how long a member must have been dead (or gone) in
	// gossip before the leader removes it from raft. Default 5m.
	ReapAfter time.Duration `yaml:"reap_after"`

	// LeaveOnTerminate makes a node that stops gracefully (SIGTERM) ask the
	// leader to remove it from raft, instead of waiting to be reaped.
	LeaveOnTerminate bool `yaml:"leave_on_terminate"`

	// Gossip configures discovery with memberlist; off when Bind is empty.
	Gossip GossipConfig `yaml:"gossip"`

	// TLS secures the cluster port (raft and forwarding) with mutual TLS.
	TLS TLSConfig `yaml:"tls"`

	// MaxConnections caps the cluster port's concurrent connections, and
	// MaxConnectionsPerHost those from one remote address (defaults 1024
	// and 128; mux_limits.go says why). Connections past a cap are closed
	// at once and logged.
	MaxConnections        int `yaml:"max_connections"`
	MaxConnectionsPerHost int `yaml:"max_connections_per_host"`

	// Insecure lets the node listen for raft or gossip where other hosts
	// can reach it without TLS or a gossip key (see exposure.go); it then
	// logs a warning at every start. Loopback-only nodes need no opt-out.
	Insecure bool `yaml:"insecure"`

	// Unsafe holds switches that break guarantees on purpose, so the
	// jepsen harness can prove its checker catches the anomaly.
	Unsafe UnsafeConfig `yaml:"unsafe"`
}

// GossipConfig configures membership discovery (hashicorp/memberlist).
type GossipConfig struct {
	// Bind is the host:port gossip listens on, TCP and UDP (port 0 picks
	// one). Empty turns gossip off.
	Bind string `yaml:"bind"`
	// Advertise is the host:port other nodes reach this one at; defaults to
	// Bind. A host name is resolved once at start.
	Advertise string `yaml:"advertise"`
	// Join lists seed addresses; the node retries them with backoff until
	// it reaches another member, and again whenever it finds itself alone.
	Join []string `yaml:"join"`
	// EncryptKey is a base64 AES key (16, 24 or 32 bytes) shared by every
	// node: gossip is encrypted and authenticated with it, and messages
	// without it are dropped.
	EncryptKey string `yaml:"encrypt_key"`
	// EncryptKeyFile names a file holding the key instead (what `kvnode
	// keygen` prints), so that it need not sit in the configuration or the
	// environment. Set one of the two.
	EncryptKeyFile string `yaml:"encrypt_key_file"`
	// Profile picks memberlist's timing: lan (default), local or wan.
	Profile string `yaml:"profile"`
}

// TLSConfig names PEM files for mutual TLS on the cluster port. Either all
// three are set or none.
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.Cert != "" || t.Key != "" || t.CA != "" }

// Enabled reports whether gossip discovery is configured.
func (g GossipConfig) Enabled() bool { return g.Bind != "" }

// Encrypted reports whether a gossip key is configured.
func (g GossipConfig) Encrypted() bool { return g.EncryptKey != "" || g.EncryptKeyFile != "" }

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
	// NoSync skips the fsync of each raft log write: writes acknowledged
	// by a majority survive process crashes but not a power loss of a
	// majority at once. Off by default.
	NoSync bool `yaml:"no_sync"`
	// LogStore keeps the raft log in "boltdb" (raft-boltdb, the default)
	// or "wal" (hashicorp/raft-wal: one fsync per append instead of two).
	// Switching migrates the data dir at the next start.
	LogStore string `yaml:"log_store"`
}

// The raft log stores (RaftConfig.LogStore).
const (
	LogStoreBolt = "boltdb"
	LogStoreWAL  = "wal"
)

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
	if c.Voters == 0 {
		c.Voters = 3
	}
	def(&c.ReapAfter, 5*time.Minute)
	if c.Gossip.Advertise == "" {
		c.Gossip.Advertise = c.Gossip.Bind
	}
	if c.Gossip.Profile == "" {
		c.Gossip.Profile = "lan"
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = defaultMaxConnections
	}
	if c.MaxConnectionsPerHost == 0 {
		c.MaxConnectionsPerHost = defaultMaxConnectionsPerHost
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
	switch c.Raft.LogStore {
	case "", LogStoreBolt, LogStoreWAL:
	default:
		bad("raft.log_store", "%q: want %s or %s", c.Raft.LogStore, LogStoreBolt, LogStoreWAL)
	}
	if c.Raft.LogStore == LogStoreWAL && c.Raft.NoSync {
		bad("raft.no_sync", "applies to log_store %s only", LogStoreBolt)
	}
	if c.Raft.CommitTimeout > maxCommitTimeout {
		// A new replication pipeline sends within two commit timeouts,
		// and the cluster port closes connections silent for longer than
		// its header timeout.
		bad("raft.commit_timeout", "%s exceeds %s", c.Raft.CommitTimeout, maxCommitTimeout)
	}
	if c.MaxConnections < 0 {
		bad("max_connections", "%d is negative", c.MaxConnections)
	}
	if c.MaxConnectionsPerHost < 0 {
		bad("max_connections_per_host", "%d is negative", c.MaxConnectionsPerHost)
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
	c.validateMembership(bad)
	c.validateExposure(bad)
	return errors.Join(errs...)
}

// validateMembership checks the gossip, voter and TLS settings.
func (c *Config) validateMembership(bad func(field, format string, args ...any)) {
	if c.Voters < 1 {
		bad("voters", "%d: want at least 1", c.Voters)
	}
	if c.ReapAfter < 0 {
		bad("reap_after", "%s is negative", c.ReapAfter)
	}
	switch {
	case c.BootstrapExpect < 0:
		bad("bootstrap_expect", "%d is negative", c.BootstrapExpect)
	case c.BootstrapExpect > 0 && len(c.Peers) > 0:
		bad("bootstrap_expect", "set together with peers: choose gossip bootstrap or a static peer list")
	case c.BootstrapExpect > 0 && !c.Gossip.Enabled():
		bad("bootstrap_expect", "needs gossip.bind: the nodes find each other by gossip")
	}
	if len(c.Gossip.Join) > 0 && !c.Gossip.Enabled() {
		bad("gossip.join", "needs gossip.bind")
	}
	if c.Gossip.Enabled() {
		if _, _, err := net.SplitHostPort(c.Gossip.Bind); err != nil {
			bad("gossip.bind", "%q: %v", c.Gossip.Bind, err)
		}
		if _, _, err := net.SplitHostPort(c.Gossip.Advertise); err != nil {
			bad("gossip.advertise", "%q: %v", c.Gossip.Advertise, err)
		}
	}
	for i, j := range c.Gossip.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			bad(fmt.Sprintf("gossip.join[%d]", i), "%q: %v", j, err)
		}
	}
	switch {
	case c.Gossip.EncryptKey != "" && c.Gossip.EncryptKeyFile != "":
		bad("gossip.encrypt_key_file", "set together with encrypt_key: choose one")
	case c.Gossip.Encrypted():
		if _, err := c.Gossip.key(); err != nil {
			field := "gossip.encrypt_key"
			if c.Gossip.EncryptKeyFile != "" {
				field += "_file"
			}
			bad(field, "%v", err)
		}
	}
	switch c.Gossip.Profile {
	case "", "lan", "local", "wan":
	default:
		bad("gossip.profile", "%q: want lan, local or wan", c.Gossip.Profile)
	}
	if t := c.TLS; t.Enabled() {
		for _, f := range [][2]string{{"tls.cert", t.Cert}, {"tls.key", t.Key}, {"tls.ca", t.CA}} {
			if f[1] == "" {
				bad(f[0], "missing: tls needs cert, key and ca together")
			} else if _, err := os.Stat(f[1]); err != nil {
				// Reported with every other problem; Open reads them.
				bad(f[0], "%v%s", err, createHint(err))
			}
		}
	}
}

// maxKeyFile bounds what is read of a key file: a key is 44 characters.
const maxKeyFile = 1 << 10

// key decodes EncryptKey, or the content of EncryptKeyFile.
func (g GossipConfig) key() ([]byte, error) {
	text := g.EncryptKey
	if g.EncryptKeyFile != "" {
		f, err := os.Open(g.EncryptKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w (create it with kvnode keygen)", err)
		}
		defer func() { _ = f.Close() }() // read only: closing loses nothing
		b, err := io.ReadAll(io.LimitReader(f, maxKeyFile))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", g.EncryptKeyFile, err)
		}
		text = string(b)
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	default:
		return nil, fmt.Errorf("%d bytes: want 16, 24 or 32 (create one with kvnode keygen)", len(k))
	}
}
