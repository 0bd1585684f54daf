// Package clustertest runs kvnode clusters in-process over real raft on
// loopback TCP, for tests: N nodes on 127.0.0.1:0 with temp dirs, polling
// waits (never sleeps), crash and restart, isolation, and state-hash checks.
package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/fsm"
)

// Options shapes a test cluster.
type Options struct {
	// Size is the number of voters (3 when zero).
	Size int
	// Storages maps storage names to the names of replicable drivers,
	// "memory" or "boltdb" (default: {"mem": memory, "bolt": boltdb}).
	Storages map[string]string
	// Tune adjusts each node's config after the harness defaults.
	Tune func(*cluster.Config)
	// TuneNode adjusts node i's config after Tune (per-node keys, certs).
	TuneNode func(i int, cfg *cluster.Config)
	// Gossip starts the nodes with gossip discovery instead of static
	// peers: each knows only the seed list (every initial node's gossip
	// address), and the first Size nodes bootstrap with bootstrap_expect.
	// The nodes start concurrently.
	Gossip bool
	// BootstrapExpect is the initial nodes' bootstrap_expect (Size when
	// zero).
	BootstrapExpect int
	// Logger receives node logs (discarded when nil; pass a t.Log handler
	// to debug).
	Logger *slog.Logger
	// Limits are the nodes' configured storage limits (cluster.Options).
	Limits map[string]drivers.Limits
	// OnApply, when set, is called with the engine after each of node
	// index's Apply calls on storage, on the state machine's goroutine.
	OnApply func(index int, storage string, e drivers.Engine)
	// Tracing, when set, gives node index its tracer provider.
	Tracing func(index int) trace.TracerProvider
}

// Cluster is a running test cluster.
type Cluster struct {
	t     testing.TB
	opts  Options
	peers []cluster.Peer
	Nodes []*Node
}

// Node is one member; Node is nil while it is killed.
type Node struct {
	Index   int
	ID      string
	Addr    string
	Dir     string
	Node    *cluster.Node
	Engines map[string]drivers.Engine
	// GossipAddr is the node's gossip address (Options.Gossip).
	GossipAddr string
	// Initial marks the nodes New started (they bootstrap); AddNode's
	// nodes join the running cluster.
	Initial bool
	tune    func(*cluster.Config)
	// releaseGossip frees the reserved gossip port just before the node
	// binds it (nil once done).
	releaseGossip func()
	net           *faultNet
	// clockOffset shifts the node's clock (SetClockOffset), in ns.
	clockOffset atomic.Int64
	// stalls holds the engines' fault switches, by storage name.
	stalls map[string]*stallSwitch
}

// WaitTimeout bounds every polling wait in the harness.
const WaitTimeout = 20 * time.Second

// New starts a cluster and registers its shutdown with t.Cleanup.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Size == 0 {
		opts.Size = 3
	}
	if opts.Storages == nil {
		opts.Storages = map[string]string{"mem": "memory", "bolt": "boltdb"}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BootstrapExpect == 0 {
		opts.BootstrapExpect = opts.Size
	}
	c := &Cluster{t: t, opts: opts}
	lns := make([]net.Listener, opts.Size)
	for i := range opts.Size {
		lns[i] = c.newNode(true)
		n := c.Nodes[i]
		c.peers = append(c.peers, cluster.Peer{ID: n.ID, Address: n.Addr})
	}
	t.Cleanup(c.Close)
	if !opts.Gossip {
		for i, n := range c.Nodes {
			c.start(n, lns[i])
		}
		return c
	}
	// Concurrently, as operators start containers: bootstrap_expect must
	// form one cluster however the starts interleave.
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		wg.Go(func() { errs[i] = c.open(n, lns[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return c
}

// newNode allocates the next node's id, directory and addresses and returns
// its bound cluster listener.
func (c *Cluster) newNode(initial bool) net.Listener {
	c.t.Helper()
	ln, err := new(net.ListenConfig).Listen(c.t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	i := len(c.Nodes)
	n := &Node{Index: i, ID: fmt.Sprintf("node%d", i), Addr: ln.Addr().String(), Dir: c.t.TempDir(),
		Initial: initial, net: newFaultNet()}
	if c.opts.Gossip {
		var port int
		port, n.releaseGossip = holdGossipPort(c.t)
		n.GossipAddr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	c.Nodes = append(c.Nodes, n)
	return ln
}

func (c *Cluster) start(n *Node, ln net.Listener) {
	c.t.Helper()
	if err := c.open(n, ln); err != nil {
		c.t.Fatal(err)
	}
}

// open starts node n; safe to call for several nodes at once.
func (c *Cluster) open(n *Node, ln net.Listener) error {
	if ln == nil {
		var err error
		// Rebind the node's own port so its peers find it again.
		deadline := time.Now().Add(WaitTimeout)
		var lc net.ListenConfig
		for ln, err = lc.Listen(c.t.Context(), "tcp", n.Addr); err != nil; ln, err = lc.Listen(c.t.Context(), "tcp", n.Addr) {
			if time.Now().After(deadline) {
				return fmt.Errorf("rebind %s: %w", n.Addr, err)
			}
			time.Sleep(10 * time.Millisecond) // port release is not observable otherwise
		}
	}
	engines := map[string]drivers.Engine{}
	if n.stalls == nil {
		n.stalls = map[string]*stallSwitch{}
	}
	for name, driver := range c.opts.Storages {
		d, ok := replicable().Lookup(driver)
		if !ok || !d.Replicable() {
			return fmt.Errorf("clustertest: unknown driver %q", driver)
		}
		dir := engineDir(n, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		e, err := d.OpenEngine(d.DefaultSettings(), drivers.Env{Storage: name, Logger: c.opts.Logger, DataDir: dir})
		if err != nil {
			return err
		}
		if n.stalls[name] == nil {
			n.stalls[name] = &stallSwitch{}
		}
		var after func(drivers.Engine)
		if c.opts.OnApply != nil {
			after = func(e drivers.Engine) { c.opts.OnApply(n.Index, name, e) }
		}
		engines[name] = wrapEngine(e, n.stalls[name], after)
	}
	cfg := cluster.Config{
		NodeID:        n.ID,
		DataDir:       filepath.Join(n.Dir, "raft"),
		Peers:         c.peers,
		ApplyTimeout:  5 * time.Second,
		SweepInterval: 50 * time.Millisecond,
		Raft: cluster.RaftConfig{
			Bind:      n.Addr,
			Advertise: n.Addr,
			// Short enough for quick failovers, long enough that a loaded
			// 2-core machine running -race does not flap leadership.
			HeartbeatTimeout:   300 * time.Millisecond,
			ElectionTimeout:    300 * time.Millisecond,
			LeaderLeaseTimeout: 150 * time.Millisecond,
			CommitTimeout:      5 * time.Millisecond,
		},
	}
	opts := cluster.Options{
		Listener: &faultListener{Listener: ln, f: n.net},
		Dial:     n.net.dial,
		RPCAddr:  "tcp://127.0.0.1:0",
		Clock:    func() time.Time { return time.Now().Add(time.Duration(n.clockOffset.Load())) },
		Limits:   c.opts.Limits,
	}
	if c.opts.Tracing != nil {
		opts.Tracing = c.opts.Tracing(n.Index)
	}
	if c.opts.Gossip {
		c.gossipConfig(n, &cfg, &opts)
	}
	if c.opts.Tune != nil {
		c.opts.Tune(&cfg)
	}
	if c.opts.TuneNode != nil {
		c.opts.TuneNode(n.Index, &cfg)
	}
	if n.tune != nil {
		n.tune(&cfg)
	}
	opts.Logger = c.opts.Logger.With("node", n.ID)
	if n.releaseGossip != nil {
		n.releaseGossip()
		n.releaseGossip = nil
	}
	node, err := cluster.Open(cfg, fsm.New(engines, opts.Logger), opts)
	if err != nil {
		for _, e := range engines {
			_ = e.Close()
		}
		return fmt.Errorf("open %s: %w", n.ID, err)
	}
	n.Engines = engines
	n.Node = node
	return nil
}

// Store returns node i's store for a storage at level.
func (c *Cluster) Store(i int, storage string, level cluster.Consistency) drivers.Store {
	c.t.Helper()
	s, err := c.Nodes[i].Node.Store(storage, level)
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// Kill stops node i abruptly-as-possible in-process: raft stops without
// handing over leadership, files are closed, nothing is flushed beyond what
// each write already synced.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	n := c.Nodes[i]
	if n.Node == nil {
		return
	}
	n.net.setIsolated(true)
	for _, sw := range n.stalls {
		sw.open() // raft waits for the FSM goroutine to stop
	}
	_ = n.Node.Close()
	for _, e := range n.Engines {
		_ = e.Close()
	}
	n.Node = nil
	n.net.setIsolated(false)
}

// Restart starts a killed node again from its data directory.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Nodes[i].Node != nil {
		c.t.Fatalf("restart %d: still running", i)
	}
	c.start(c.Nodes[i], nil)
}

// TryRestart starts a killed node again and returns Open's error instead
// of failing the test.
func (c *Cluster) TryRestart(i int) error {
	c.t.Helper()
	if c.Nodes[i].Node != nil {
		c.t.Fatalf("restart %d: still running", i)
	}
	return c.open(c.Nodes[i], nil)
}

// DataDir is node i's cluster.data_dir; its engine files are in Dir.
func (c *Cluster) DataDir(i int) string { return filepath.Join(c.Nodes[i].Dir, "raft") }

// EngineFiles lists node i's engine files (its boltdb files).
func (c *Cluster) EngineFiles(i int) []string {
	var out []string
	for name, driver := range c.opts.Storages {
		if d, ok := replicable().Lookup(driver); ok && d.File != nil {
			out = append(out, d.File(d.DefaultSettings(), engineDir(c.Nodes[i], name)))
		}
	}
	return out
}

// replicable lists the drivers a test cluster can replicate.
func replicable() *drivers.Registry {
	return drivers.NewRegistry(memory.Driver(), boltdb.Driver())
}

// engineDir is where a storage's engine keeps its files (a boltdb storage
// its default file, rr.db): one directory per storage, so storages never
// share a file.
func engineDir(n *Node, storage string) string {
	return filepath.Join(n.Dir, "engines", storage)
}

// Wipe kills node i and deletes everything in its directory, as a disk
// loss does; Restart then starts it empty under the same id and address.
func (c *Cluster) Wipe(i int) {
	c.t.Helper()
	c.Kill(i)
	n := c.Nodes[i]
	entries, err := os.ReadDir(n.Dir)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(n.Dir, e.Name())); err != nil {
			c.t.Fatal(err)
		}
	}
}

// SetClockOffset shifts node i's clock by d from the host's, as clock skew
// between hosts does; it applies from the next reading, also across
// restarts.
func (c *Cluster) SetClockOffset(i int, d time.Duration) { c.Nodes[i].clockOffset.Store(int64(d)) }

// Stall makes every Apply of node i's engine for storage wait until the
// returned release is called (reads go on), as a slow disk or a busy FSM
// does. release is idempotent.
func (c *Cluster) Stall(i int, storage string) (release func()) {
	c.t.Helper()
	sw := c.Nodes[i].stalls[storage]
	if sw == nil {
		c.t.Fatalf("stall: node %d has no storage %q", i, storage)
	}
	return sw.stall()
}

// Isolate cuts node i off from every peer (both directions) on the cluster
// port; gossip (Options.Gossip) still reaches it, so the others keep
// seeing it alive.
func (c *Cluster) Isolate(i int) { c.Nodes[i].net.setIsolated(true) }

// Heal reconnects node i.
func (c *Cluster) Heal(i int) { c.Nodes[i].net.setIsolated(false) }

// Live returns the running nodes.
func (c *Cluster) Live() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Node != nil {
			out = append(out, n)
		}
	}
	return out
}

// Poll calls cond until it returns "" or WaitTimeout passes, then fails
// the test with cond's last complaint.
func (c *Cluster) Poll(what string, cond func() string) {
	c.t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: %s", what, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitLeader waits until every live, connected node agrees on one leader
// among them and returns its index.
func (c *Cluster) WaitLeader(exclude ...int) int {
	c.t.Helper()
	skip := map[int]bool{}
	for _, i := range exclude {
		skip[i] = true
	}
	leader := -1
	c.Poll("wait for leader", func() string {
		leader = -1
		var leaderID string
		for _, n := range c.Live() {
			if skip[n.Index] {
				continue
			}
			id, _ := n.Node.Leader()
			if id == "" {
				return n.ID + " knows no leader"
			}
			if leaderID != "" && id != leaderID {
				return fmt.Sprintf("nodes disagree: %s vs %s", leaderID, id)
			}
			leaderID = id
		}
		for _, n := range c.Live() {
			if n.ID == leaderID && !skip[n.Index] && n.Node.IsLeader() {
				leader = n.Index
				return ""
			}
		}
		return "leader " + leaderID + " is not a live leader"
	})
	return leader
}

// Followers returns the live node indexes other than the leader.
func (c *Cluster) Followers(leader int) []int {
	var out []int
	for _, n := range c.Live() {
		if n.Index != leader {
			out = append(out, n.Index)
		}
	}
	return out
}

// EnsureSame waits until every live node has applied the same index and
// holds the same state hash.
func (c *Cluster) EnsureSame() {
	c.t.Helper()
	c.Poll("ensure same state", func() string {
		var first []byte
		var firstIdx uint64
		for k, n := range c.Live() {
			f := n.Node.FSM()
			idx := f.AppliedIndex()
			h, err := f.StateHash()
			if err != nil {
				return err.Error()
			}
			if k == 0 {
				first, firstIdx = h, idx
				continue
			}
			if idx != firstIdx || !bytes.Equal(h, first) {
				return fmt.Sprintf("%s at index %d hash %x, first node at %d hash %x", n.ID, idx, h[:6], firstIdx, first[:6])
			}
		}
		return ""
	})
}

// Retry runs an idempotent write until it succeeds, for tests that are not
// about failover but may see leadership move on a loaded machine. It fails
// the test on a state machine refusal or after WaitTimeout.
func (c *Cluster) Retry(what string, write func(ctx context.Context) error) {
	c.t.Helper()
	var last error
	c.Poll(what, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		last = write(ctx)
		switch {
		case last == nil:
			return ""
		case errors.Is(last, cluster.ErrNoLeader), errors.Is(last, cluster.ErrOutcomeUnknown):
			return last.Error()
		default:
			c.t.Fatalf("%s: %v", what, last)
			return ""
		}
	})
}

// Close stops every node.
func (c *Cluster) Close() {
	for i, n := range c.Nodes {
		c.Kill(i)
		if n.releaseGossip != nil {
			n.releaseGossip()
		}
	}
}

// Fill writes n keys named prefix0..prefixN-1 to every storage through
// node i, in calls of 20 items, a third of them with a deadline an hour
// away, waits until every node holds the same state and returns its hash.
// Values differ in content and size (100+j bytes).
func (c *Cluster) Fill(i, n int, prefix string) []byte {
	c.t.Helper()
	deadline := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	names := make([]string, 0, len(c.opts.Storages))
	for name := range c.opts.Storages {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, storage := range names {
		for k := 0; k < n; k += 20 {
			var items []drivers.Item
			for j := k; j < min(k+20, n); j++ {
				it := drivers.Item{Key: fmt.Sprintf("%s%d", prefix, j), Value: bytes.Repeat([]byte{byte(j)}, 100+j)}
				if j%3 == 0 {
					it.Timeout, it.Deadline = deadline.Format(time.RFC3339), deadline.UnixNano()
				}
				items = append(items, it)
			}
			c.Retry("fill", func(ctx context.Context) error {
				return c.Store(i, storage, cluster.ReadLocal).Set(ctx, items)
			})
		}
	}
	c.EnsureSame()
	h, err := c.Nodes[i].Node.FSM().StateHash()
	if err != nil {
		c.t.Fatal(err)
	}
	return h
}
