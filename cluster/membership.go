package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// metaVersion is bumped when the gossip metadata changes incompatibly.
const metaVersion = 1

// meta is what a node tells the others about itself through gossip. It
// stays far below memberlist's 512-byte limit: short keys, no padding.
type meta struct {
	V    int    `json:"v"`
	ID   string `json:"id"`
	Raft string `json:"r"`
	RPC  string `json:"p,omitempty"`
	// Expect is the node's bootstrap_expect.
	Expect int `json:"e,omitempty"`
	// State says the node holds raft state: it belongs to a cluster, so
	// nobody may bootstrap a new one with it.
	State bool `json:"s,omitempty"`
	// Set is the digest of the bootstrap set this node proposes (bootstrap.go).
	Set string `json:"b,omitempty"`
	// Leaving is announced just before a graceful leave, so the others
	// record "left" rather than "dead" and the leader does not re-add it.
	Leaving bool `json:"l,omitempty"`
}

// Member is one node as this node's gossip sees it.
type Member struct {
	ID         string
	GossipAddr string
	RaftAddr   string
	RPCAddr    string
	// State is "alive", "dead" (failed, as memberlist's failure detector
	// decided) or "left" (announced its departure).
	State string
	// Since is when this node saw State begin (its own clock).
	Since time.Time
	// Suffrage is "voter", "nonvoter", or "" when the member is not in the
	// raft configuration this node knows.
	Suffrage string
}

// member is the tracked record behind a Member.
type member struct {
	addr  string
	meta  meta
	bad   error // metadata that did not decode
	state memberlist.NodeStateType
	since time.Time
	// leaving: the member asked this leader to remove it, so its coming
	// departure is a leave even if its Leaving flag never arrived.
	leaving bool
}

// gossip runs memberlist for a node and remembers members memberlist
// forgets: a dead node drops out of memberlist after a while, yet the
// leader must still know how long it has been dead to reap it.
type gossip struct {
	ml     *memberlist.Memberlist
	logger *slog.Logger
	seeds  []string
	// settle is how long a bootstrap proposal must stay unchanged.
	settle time.Duration
	// warn rate-limits repeated warnings about one member.
	warn *logLimiter

	// left is set once this node announced its departure: re-advertising
	// metadata after that would announce it alive again.
	left atomic.Bool
	// advertise serialises UpdateNode calls: memberlist's re-advertising
	// is not safe for concurrent callers (the race detector caught
	// bootstrap and SetRPCAddr doing it at once).
	advertise sync.Mutex

	mu      sync.Mutex
	local   meta
	members map[string]*member
	// changed is signalled (never blocking) on every membership event.
	changed chan struct{}
}

// startGossip creates the memberlist of node n, not yet joined to anyone.
func startGossip(n *Node, hasState bool) (*gossip, error) {
	gc := n.cfg.Gossip
	var mc *memberlist.Config
	switch gc.Profile {
	case "local":
		mc = memberlist.DefaultLocalConfig()
	case "wan":
		mc = memberlist.DefaultWANConfig()
	default:
		mc = memberlist.DefaultLANConfig()
	}
	mc.Name = n.cfg.NodeID
	var err error
	if mc.BindAddr, mc.BindPort, err = hostPortIP(n.ctx, gc.Bind); err != nil {
		return nil, fmt.Errorf("%w: cluster.gossip.bind: %w", ErrConfig, err)
	}
	if gc.Advertise != gc.Bind {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = hostPortIP(n.ctx, gc.Advertise); err != nil {
			return nil, fmt.Errorf("%w: cluster.gossip.advertise: %w", ErrConfig, err)
		}
	}
	if gc.Encrypted() {
		key, err := gc.key()
		if err != nil {
			return nil, fmt.Errorf("%w: cluster.gossip.encrypt_key: %w", ErrConfig, err)
		}
		if mc.Keyring, err = memberlist.NewKeyring(nil, key); err != nil {
			return nil, fmt.Errorf("%w: cluster.gossip.encrypt_key: %w", ErrConfig, err)
		}
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	g := &gossip{
		logger:  n.logger,
		warn:    newLogLimiter(refusalLogEvery),
		members: map[string]*member{},
		changed: make(chan struct{}, 1),
		local: meta{V: metaVersion, ID: n.cfg.NodeID, Raft: n.addr, RPC: n.opts.RPCAddr,
			Expect: n.cfg.BootstrapExpect, State: hasState},
	}
	for _, s := range gc.Join {
		if s != gc.Advertise && s != gc.Bind {
			g.seeds = append(g.seeds, s)
		}
	}
	mc.Delegate = (*gossipDelegate)(g)
	mc.Events = (*gossipEvents)(g)
	mc.Logger = log.New(newGossipLog(n.logger), "", 0)
	if n.opts.GossipTune != nil {
		n.opts.GossipTune(mc)
	}
	// Ten gossip rounds let a new member's metadata reach everyone.
	g.settle = max(10*mc.GossipInterval, 500*time.Millisecond)
	if g.ml, err = memberlist.Create(mc); err != nil {
		return nil, fmt.Errorf("cluster.gossip.bind: %w", err)
	}
	return g, nil
}

// hostPortIP splits host:port for memberlist, which wants an IP: a host
// name is resolved once, an empty host means every interface.
func hostPortIP(ctx context.Context, hp string) (string, int, error) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err // wrapped by the caller with the field
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port %q", port)
	}
	if host == "" {
		return "0.0.0.0", p, nil
	}
	if net.ParseIP(host) != nil {
		return host, p, nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(ips) == 0 {
		return "", 0, fmt.Errorf("resolve %q: %w", host, cmpErr(err, errNoAddress))
	}
	for _, ip := range ips {
		if ip.IP.To4() != nil {
			return ip.IP.String(), p, nil
		}
	}
	return ips[0].IP.String(), p, nil
}

// addr is the gossip address actually in use (after port 0 was resolved).
func (g *gossip) addr() string {
	ln := g.ml.LocalNode()
	return net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
}

func (g *gossip) signal() {
	select {
	case g.changed <- struct{}{}:
	default:
	}
}

// setMeta changes the local metadata and, if it changed, re-advertises it.
// It blocks at most briefly: a timeout only means the broadcast is still
// queued.
func (g *gossip) setMeta(f func(*meta)) {
	g.mu.Lock()
	before := g.local
	f(&g.local)
	changed := g.local != before
	g.mu.Unlock()
	if changed && !g.left.Load() {
		g.advertise.Lock()
		_ = g.ml.UpdateNode(500 * time.Millisecond)
		g.advertise.Unlock()
	}
}

// leave announces the departure: first the Leaving flag, so the others
// record "left" rather than "dead", then memberlist's leave broadcast.
func (g *gossip) leave(timeout time.Duration) error {
	g.mu.Lock()
	g.local.Leaving = true
	g.mu.Unlock()
	// Wait until the flag has been gossiped: the leave broadcast that
	// follows replaces a metadata update still queued for this node.
	g.advertise.Lock()
	_ = g.ml.UpdateNode(timeout / 2)
	g.advertise.Unlock()
	g.left.Store(true)
	return g.ml.Leave(timeout) // wrapped by Leave
}

// markLeaving records that member id announced its departure to us.
func (g *gossip) markLeaving(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m, ok := g.members[id]; ok {
		m.leaving = true
		if m.state == memberlist.StateDead {
			m.state = memberlist.StateLeft
		}
	}
}

// snapshot copies the tracked members by id, the local node included.
func (g *gossip) snapshot() map[string]member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]member, len(g.members))
	for name, m := range g.members {
		out[name] = *m
	}
	return out
}

// prune forgets members dead or gone for longer than after.
func (g *gossip) prune(after time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, m := range g.members {
		if m.state >= memberlist.StateDead && time.Since(m.since) > after {
			delete(g.members, name)
		}
	}
}

// alone reports whether no other member is alive.
func (g *gossip) alone() bool { return g.ml.NumMembers() <= 1 }

// GossipMembers lists the members this node's gossip knows, sorted by id,
// the node itself included; nil when gossip is off. Dead and left members
// stay listed until they have been gone for a while (see prune).
func (n *Node) GossipMembers() []Member {
	if n.gossip == nil {
		return nil
	}
	suffrage := map[string]string{}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			suffrage[string(s.ID)] = "nonvoter"
			if s.Suffrage == raft.Voter {
				suffrage[string(s.ID)] = "voter"
			}
		}
	}
	var out []Member
	for name, m := range n.gossip.snapshot() {
		out = append(out, Member{ID: name, GossipAddr: m.addr, RaftAddr: m.meta.Raft, RPCAddr: m.meta.RPC,
			State: stateName(m.state), Since: m.since, Suffrage: suffrage[name]})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// GossipAddr is the gossip address in use, "" when gossip is off.
func (n *Node) GossipAddr() string {
	if n.gossip == nil {
		return ""
	}
	return n.gossip.addr()
}

// SetRPCAddr updates the RPC address advertised in gossip, for when the
// RPC listener is bound after the node opened (port 0).
func (n *Node) SetRPCAddr(addr string) {
	if n.gossip != nil {
		n.gossip.setMeta(func(m *meta) { m.RPC = addr })
	}
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive, memberlist.StateSuspect:
		return "alive"
	case memberlist.StateDead:
		return "dead"
	default:
		return "left"
	}
}

// gossipDelegate serves the local metadata. Memberlist calls it from its
// own goroutines, so it only reads under the lock.
type gossipDelegate gossip

func (d *gossipDelegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	m := d.local
	d.mu.Unlock()
	b, _ := json.Marshal(m)
	if len(b) > limit {
		// Only a very long RPC address (a unix socket path) can get here;
		// the cluster works without it.
		m.RPC = ""
		b, _ = json.Marshal(m)
	}
	return b
}

func (d *gossipDelegate) NotifyMsg([]byte)                           {}
func (d *gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *gossipDelegate) LocalState(join bool) []byte                { return nil }
func (d *gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

// gossipEvents records membership changes. memberlist holds its own locks
// while calling these, so they only update the map and signal.
type gossipEvents gossip

// record stores an event about n. memberlist does not keep Node.State up
// to date, so the callback says what happened; "left" is told apart from
// "dead" by the Leaving flag the node advertised before leaving.
func (e *gossipEvents) record(n *memberlist.Node, gone bool) {
	g := (*gossip)(e)
	g.mu.Lock()
	m, ok := g.members[n.Name]
	if !ok {
		m = &member{}
		g.members[n.Name] = m
	}
	m.addr = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	m.bad = nil
	var md meta
	if err := json.Unmarshal(n.Meta, &md); err != nil {
		m.bad = fmt.Errorf("gossip metadata of %s: %w", n.Name, err)
	} else if md.ID != n.Name {
		m.bad = fmt.Errorf("gossip metadata of %s names %q: %w", n.Name, md.ID, errNotMember)
	}
	if len(n.Meta) > 0 || !ok {
		m.meta = md
	}
	state := memberlist.StateAlive
	switch {
	case !gone:
		m.leaving = false // back (a restart): a later failure is a failure
	case m.meta.Leaving || m.leaving:
		state = memberlist.StateLeft
	default:
		state = memberlist.StateDead
	}
	if !ok || m.state != state {
		m.since = time.Now()
	}
	m.state = state
	g.mu.Unlock()
	g.signal()
}

func (e *gossipEvents) NotifyJoin(n *memberlist.Node)   { e.record(n, false) }
func (e *gossipEvents) NotifyLeave(n *memberlist.Node)  { e.record(n, true) }
func (e *gossipEvents) NotifyUpdate(n *memberlist.Node) { e.record(n, false) }
