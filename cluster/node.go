package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/rpc"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/trace"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/fsm"
	eventlog "github.com/kvnode/kvnode/log"
)

// Options carries what a Node needs besides its Config.
type Options struct {
	// Listener is a pre-bound listener for the cluster port (tests bind
	// 127.0.0.1:0 first to know every address); nil listens on Raft.Bind.
	Listener net.Listener
	// Dial opens connections to peers (tests inject faults here); nil uses
	// net.DialTimeout.
	Dial func(address string, timeout time.Duration) (net.Conn, error)
	// Clock stamps proposed events; time.Now when nil.
	Clock  func() time.Time
	Logger *slog.Logger
	// RPCAddr is the node's RPC address, advertised in gossip so tools and
	// clients can find every node's kv endpoint (see also SetRPCAddr).
	RPCAddr string
	// GossipTune adjusts memberlist's settings after the profile's defaults
	// (tests shorten its probe intervals).
	GossipTune func(*memberlist.Config)
	// ReconcileInterval is how often the leader reconciles raft membership
	// with gossip besides on every gossip event; 1s when zero.
	ReconcileInterval time.Duration
	// BootID returns the id of the machine's current boot (recovery.go);
	// nil reads Linux's.
	BootID func() string
	// UnsyncedEngines says the persistent engines were opened without
	// fsync (drivers.Env.Unsynced): the node records it in its running
	// marker, so that after an OS crash CheckEngineFiles has them rebuilt.
	UnsyncedEngines bool
	// Limits are the configured limits of bounded storages, by name; the
	// leader makes them the replicated ones (evict.go).
	Limits map[string]drivers.Limits
	// EvictionSamples are the lru policy's samples per victim, by storage
	// (drivers.DefaultSamples when absent).
	EvictionSamples map[string]int
	// Tracing receives the spans of storage calls, forwarded writes and
	// proposals; nil records none.
	Tracing trace.TracerProvider
}

// Node is one member of the raft cluster serving the replicated storages.
type Node struct {
	cfg    Config
	opts   Options
	logger *slog.Logger

	fsm    *fsm.FSM
	stores *eventlog.Stores
	tracer trace.Tracer // nil without Options.Tracing
	// stamper stamps proposals: the clock, floored at the replicated one.
	stamper drivers.Stamper
	// localReads is the time local reads judge expiry by (localReadTime).
	localReads *drivers.ReadClock
	// id is the node's identity and addr its raft address (identity.go).
	id   identity
	addr string
	// staticPending: static peers, no raft state yet (staticjoin.go).
	staticPending bool
	// marked: the node marked itself running (recovery.go).
	marked     bool
	mux        *mux
	transport  *raft.NetworkTransport
	raft       *raft.Raft
	peerServer *rpc.Server // the peer protocol (peer.go)
	peers      *peerClients
	gossip     *gossip // nil without cluster.gossip

	// boot and recon belong to the membership loop's goroutine.
	boot  bootstrapState
	recon reconciler
	// leaving is set by Leave: the node must not be (re-)added.
	leaving atomic.Bool

	// readyTerm is the term in which this leader has applied a barrier, so
	// its commit index covers every entry of earlier terms (ReadIndex).
	readyTerm atomic.Uint64
	barrierMu sync.Mutex
	// nudging is set while a barrier requested by a follower is in flight.
	nudging atomic.Bool
	// reads coalesces concurrent ReadIndex attempts into rounds.
	reads readRounds
	// leaderBatcher coalesces this leader's own writes (propose.go).
	leaderBatcher *batcher
	// acked is the highest log index of a write this node acknowledged:
	// reads here wait until it is applied (awaitAcked).
	acked atomic.Uint64
	// acksKnown is closed once acked covers what this node acknowledged
	// before a restart (learnAcked); at once for a node without state.
	acksKnown chan struct{}
	// versions holds the log version each member reported (versions.go).
	versions peerVersions
	// watchers counts the followers' Watch calls held here (watch.go).
	watchers atomic.Int32
	// evict plans the leader's evictions (evict.go); hints gathers reads
	// for the leader's lru (hints.go).
	evict *evictor
	hints hints

	closed atomic.Bool
	stop   chan struct{}
	// ctx is cancelled when the node closes, for background work.
	ctx       context.Context
	cancel    context.CancelFunc
	bg        sync.WaitGroup
	closeOnce sync.Once
}

// Open starts a node: it opens the raft log in cfg.DataDir, listens on the
// cluster port, bootstraps a new cluster from cfg.Peers on the very first
// start, and starts the leader's expiry sweeper.
func Open(cfg Config, f *fsm.FSM, opts Options) (*Node, error) {
	cfg.InitDefaults()
	if opts.Listener != nil {
		// The real address is known: let Validate see it.
		if cfg.Raft.Bind == "" || cfg.Raft.Bind == cfg.Raft.Advertise {
			cfg.Raft.Advertise = opts.Listener.Addr().String()
		}
		if cfg.Raft.Bind == "" {
			cfg.Raft.Bind = cfg.Raft.Advertise
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReconcileInterval <= 0 {
		opts.ReconcileInterval = defaultReconcileInterval
	}
	if opts.Dial == nil {
		opts.Dial = func(address string, timeout time.Duration) (net.Conn, error) {
			return net.DialTimeout("tcp", address, timeout) //nolint:noctx // Dial has raft's StreamLayer shape: a timeout, no context
		}
	}
	n := &Node{cfg: cfg, opts: opts, fsm: f, stop: make(chan struct{}),
		logger: opts.Logger.With("component", "cluster", "node", cfg.NodeID)}
	n.stamper = drivers.NewStamper(opts.Clock, f.Clock)
	n.localReads = drivers.NewReadClock(n.stamper)
	if opts.Tracing != nil {
		n.tracer = opts.Tracing.Tracer("github.com/kvnode/kvnode/cluster")
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	// One batch under way at a time: the leader's log writes are
	// serialised by raft anyway, and each batch that waits for the one
	// under way takes everything queued meanwhile into one entry. Several
	// smaller entries, each its own log write, measured half as fast.
	n.leaderBatcher = &batcher{send: n.commitWrites, slots: 1, maxEvents: leaderBatchEvents, maxBytes: leaderBatchBytes}
	n.acksKnown = make(chan struct{})
	n.evict = newEvictor(n)
	if err := n.open(); err != nil {
		n.cancel()
		_ = n.teardown()
		return nil, err
	}
	n.bg.Add(5)
	go n.housekeepingLoop()
	go n.versionLoop()
	go n.watchLoop()
	go n.hintLoop()
	go n.logSizeLoop()
	select {
	case <-n.acksKnown:
	default:
		n.bg.Add(1)
		go n.learnAcked()
	}
	if n.staticPending {
		n.bg.Add(1)
		go n.staticJoinLoop()
	}
	if n.gossip == nil && len(n.cfg.Peers) > 0 {
		n.bg.Add(1)
		go n.staticMembershipLoop()
	}
	if n.gossip != nil {
		n.bg.Add(2)
		go n.joinLoop()
		go n.membershipLoop()
	}
	return n, nil
}

func (n *Node) open() error {
	if err := os.MkdirAll(n.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("cluster.data_dir: %w", err)
	}
	var storeOpts []eventlog.StoreOption
	if n.cfg.Raft.NoSync {
		storeOpts = append(storeOpts, eventlog.WithNoSync())
	}
	if n.cfg.Raft.LogStore == LogStoreWAL {
		storeOpts = append(storeOpts, eventlog.WithWAL())
	}
	stores, err := eventlog.OpenStores(n.cfg.DataDir, n.logger, storeOpts...)
	if err != nil {
		return fmt.Errorf("open raft log: %w", err)
	}
	n.stores = stores
	has, err := raft.HasExistingState(n.stores.Log, n.stores.Stable, n.stores.Snapshots)
	if err != nil {
		return fmt.Errorf("read raft state: %w", err)
	}
	id, created, err := loadIdentity(n.cfg.DataDir, n.cfg.NodeID, has)
	if err != nil {
		return err
	}
	n.id = id
	if created && id.Incarnation != "" {
		n.logger.Info("new node identity: this node joins as a new member", "incarnation", id.Incarnation)
	}

	ln := n.opts.Listener
	if ln == nil {
		if ln, err = new(net.ListenConfig).Listen(n.ctx, "tcp", n.cfg.Raft.Bind); err != nil {
			return fmt.Errorf("cluster.raft.bind: %w", err)
		}
		if n.cfg.Raft.Advertise == n.cfg.Raft.Bind {
			n.cfg.Raft.Advertise = ln.Addr().String()
		}
	}
	var tp *tlsPair
	if n.cfg.TLS.Enabled() {
		if tp, err = loadTLS(n.cfg.TLS); err != nil {
			_ = ln.Close()
			return err
		}
	}
	n.addr = tagAddr(n.cfg.Raft.Advertise, id.Incarnation)
	n.mux = newMux(ln, stringAddr(n.addr), id.Incarnation, n.opts.Dial, tp, limitsFor(n.cfg), n.logger)
	n.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  n.mux.raft,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  newHclog(n.logger, "raft-net"),
	})

	n.peers = newPeerClients(n.mux)
	n.peerServer = rpc.NewServer()
	if err := n.peerServer.RegisterName(peerService, &peer{n: n}); err != nil {
		return fmt.Errorf("register forwarding: %w", err)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.HeartbeatTimeout = n.cfg.Raft.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.Raft.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.Raft.LeaderLeaseTimeout
	rc.CommitTimeout = n.cfg.Raft.CommitTimeout
	rc.SnapshotThreshold = n.cfg.Raft.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.Raft.SnapshotInterval
	rc.TrailingLogs = n.cfg.Raft.TrailingLogs
	// Concurrent proposals leave the apply channel together and share one
	// log write and one fsync.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	rc.Logger = newHclog(n.logger, "raft")

	if err := n.checkDurability(); err != nil {
		return err
	}
	n.marked = true
	r, err := raft.NewRaft(rc, n.fsm, n.stores.Log, n.stores.Stable, n.stores.Snapshots, n.transport)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	// Only now: a follower still forwarding to this address (the leader's
	// before a restart) must find raft here. Connections that arrived
	// earlier wait in the mux until this accepts them.
	go n.serveForward()
	// Without raft state: static peers bootstrap together once every one
	// of them answers without state, or join the cluster that one of them
	// belongs to (staticjoin.go); with gossip and no static peers,
	// bootstrap_expect decides (or a leader adds this node); a node on its
	// own bootstraps alone.
	if !has {
		close(n.acksKnown)
	}
	switch {
	case has:
	case len(n.cfg.Peers) > 0:
		n.staticPending = true
	case !n.cfg.Gossip.Enabled():
		if err := n.bootstrap([]raft.Server{n.self()}); err != nil {
			return err
		}
	}
	if n.cfg.Gossip.Enabled() {
		if n.gossip, err = startGossip(n, has); err != nil {
			return err
		}
	}
	n.logger.Info("cluster node started", "raft", n.cfg.Raft.Advertise, "incarnation", id.Incarnation, "existing_state", has,
		"gossip", n.GossipAddr(), "tls", tp != nil)
	n.warnInsecure()
	if n.cfg.Unsafe.LocalLinearizableReads {
		n.logger.Error("UNSAFE: cluster.unsafe.local_linearizable_reads is on: linearizable storages may serve stale reads")
	}
	return nil
}

// serveForward serves followers' forwarded calls until the mux closes.
func (n *Node) serveForward() {
	for {
		c, err := n.mux.forward.Accept()
		if err != nil {
			return
		}
		go n.peerServer.ServeConn(c)
	}
}

// bootstrap writes the initial configuration. Every node that bootstraps
// one cluster writes the identical configuration, which raft allows.
func (n *Node) bootstrap(servers []raft.Server) error {
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

// self is this node as a voter of a configuration.
func (n *Node) self() raft.Server {
	return raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.NodeID), Address: raft.ServerAddress(n.addr)}
}

// ID is the node's raft server id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Addr is the node's raft address: the advertised cluster address tagged
// with its incarnation (DialAddr strips the tag).
func (n *Node) Addr() string { return n.addr }

// Incarnation is the node's incarnation, "" for a node whose raft state
// predates identities (identity.go).
func (n *Node) Incarnation() string { return n.id.Incarnation }

// Raft exposes the raft instance for status and tests.
func (n *Node) Raft() *raft.Raft { return n.raft }

// FSM exposes the state machine for status and tests.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// IsLeader reports whether this node currently leads.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the id and address of the leader this node knows of.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// Close stops the node: sweeper, raft, cluster port and the raft log. The
// replicated engines belong to the caller, who closes them afterwards.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		n.cancel()
		close(n.stop)
		n.bg.Wait()
		err = n.teardown()
	})
	return err
}

func (n *Node) teardown() error {
	var errs []error
	if n.gossip != nil {
		// No leave message: a crash looks the same to the others, and a
		// graceful stop has announced its departure in Leave already.
		errs = append(errs, n.gossip.ml.Shutdown())
	}
	if n.raft != nil {
		errs = append(errs, n.raft.Shutdown().Error())
	}
	if n.peers != nil {
		n.peers.closeAll()
	}
	if n.transport != nil {
		errs = append(errs, n.transport.Close())
	} else if n.mux != nil {
		errs = append(errs, n.mux.close())
	} else if n.opts.Listener != nil {
		errs = append(errs, n.opts.Listener.Close())
	}
	if n.mux != nil {
		_ = n.mux.close()
		n.mux.drainRaft(5 * time.Second)
	}
	if n.stores != nil {
		err := n.stores.Close()
		if err == nil && n.marked {
			// Raft has stopped: nothing more is applied. Unsynced engines'
			// files must be whole before the marker calls the stop clean.
			err = n.syncEngines()
		}
		if err == nil && n.marked {
			n.markStopped()
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// stringAddr is an advertised address taken as given: a host name stays a
// host name (resolved by whoever dials it, e.g. docker's DNS).
type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

func remaining(ctx context.Context, fallback time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return fallback
}

// wait blocks until f resolves or ctx ends; a raft future cannot be
// cancelled, so a goroutine waits for it.
func wait(ctx context.Context, f raft.Future) (error, bool) {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err, true
	case <-ctx.Done():
		return ctx.Err(), false
	}
}
