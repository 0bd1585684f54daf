package harness

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Nemesis kinds.
const (
	// NemesisKill: SIGKILL a node (the leader half of the time), restart it.
	NemesisKill = "kill"
	// NemesisPause: freeze a node (the leader half of the time), thaw it.
	NemesisPause = "pause"
	// NemesisPartition: cut a random node off the peer network (a
	// minority of one against a majority of two), then heal.
	NemesisPartition = "partition"
	// NemesisLeader: cut the current leader off the peer network.
	NemesisLeader = "leader"
	// NemesisReplace: kill a node, wait until the leader removes it from
	// the raft configuration (reap_after, with gossip), remove its
	// container and data, and start an empty node under its name that must
	// join again, become a voter and catch up.
	NemesisReplace = "remove"
	// NemesisWipe: kill a voter (the leader half of the time), delete its
	// data and start it again at once under the same name, without waiting
	// for it to be reaped: a disk lost under a running cluster. The first
	// wipe and every second one after it happen behind a lagging peer
	// (wipeBehindLaggingPeer).
	NemesisWipe = "wipe"
	// NemesisSkew: offset one node's clock (the leader half of the time)
	// by 2-5 s, forwards or backwards (failpoint builds).
	NemesisSkew = "skew"
	// NemesisSlowDisk: delay every raft log write of one node (the leader
	// half of the time) by 20-150 ms (failpoint builds).
	NemesisSlowDisk = "slow-disk"
	// NemesisSlowFSM: delay every state machine batch of one node (the
	// leader half of the time) by 50-300 ms, so it applies behind the
	// others (failpoint builds).
	NemesisSlowFSM = "slow-fsm"
)

// AllNemeses lists every kind.
var AllNemeses = []string{NemesisKill, NemesisPause, NemesisPartition, NemesisLeader, NemesisReplace,
	NemesisWipe, NemesisSkew, NemesisSlowDisk, NemesisSlowFSM}

// NeedFailpoints are the kinds only a failpoint build can inject.
var NeedFailpoints = map[string]bool{NemesisSkew: true, NemesisSlowDisk: true, NemesisSlowFSM: true}

// Fault is one injected fault.
type Fault struct {
	Kind   string `json:"kind"`
	Node   string `json:"node"`
	Leader bool   `json:"leader"`
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
	Err    string `json:"error,omitempty"`
	Note   string `json:"note,omitempty"`
	// Offset is the clock offset of a skew fault.
	Offset time.Duration `json:"offset,omitempty"`
	// Also lists other nodes the fault killed and restarted.
	Also []string `json:"also,omitempty"`
}

// NemesisOptions times the faults.
type NemesisOptions struct {
	Kinds []string
	// Calm is the fault-free time between faults; Hold how long each lasts.
	CalmMin, CalmMax time.Duration
	HoldMin, HoldMax time.Duration
	MaxFaults        int
	// ReapWait bounds the wait for a killed node's removal from the raft
	// configuration in the remove nemesis (0: do not wait).
	ReapWait time.Duration
	// Settle bounds the wait, before a fault that loses a disk, for every
	// node to answer as a voter (default 1 minute).
	Settle time.Duration
}

func (o *NemesisOptions) defaults() {
	if o.CalmMin <= 0 {
		o.CalmMin = 3 * time.Second
	}
	if o.CalmMax <= o.CalmMin {
		o.CalmMax = o.CalmMin + 4*time.Second
	}
	if o.HoldMin <= 0 {
		o.HoldMin = 3 * time.Second
	}
	if o.HoldMax <= o.HoldMin {
		o.HoldMax = o.HoldMin + 5*time.Second
	}
	if o.MaxFaults <= 0 {
		o.MaxFaults = 10_000
	}
	if o.Settle <= 0 {
		o.Settle = time.Minute
	}
}

type nemesis struct {
	c      Cluster
	opts   NemesisOptions
	clock  runClock
	rng    *rand.Rand
	logger *slog.Logger
	mu     sync.Mutex
	faults []Fault
	// note describes what the current fault's heal observed.
	note  string
	wipes int
}

// replace heals the remove nemesis: once the leader has removed the dead
// node (or ReapWait passed), the node comes back empty and must become a
// voter again.
func (n *nemesis) replace(ctx context.Context, node string) error {
	if n.opts.ReapWait > 0 {
		if d, ok := waitVoter(ctx, n.c, node, false, n.opts.ReapWait); ok {
			n.note = fmt.Sprintf("removed from raft after %s", d.Round(time.Second))
		} else {
			n.note = fmt.Sprintf("still a voter after %s", d.Round(time.Second))
		}
	}
	if err := n.c.Replace(ctx, node); err != nil {
		return err
	}
	if n.opts.ReapWait > 0 {
		if d, ok := waitVoter(ctx, n.c, node, true, time.Minute); ok {
			n.note += fmt.Sprintf("; voter again %s after restart", d.Round(time.Second))
		} else {
			n.note += "; not a voter again within 1m"
		}
	}
	return nil
}

func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}

// run injects faults one at a time until ctx ends; every fault is healed
// before the next starts and before run returns. No fault starts when less
// than the longest hold is left: the workers stop at the deadline, so it
// would hurt nobody and only delay the checks.
func (n *nemesis) run(ctx context.Context) {
	kinds := n.opts.Kinds
	deadline, bounded := ctx.Deadline()
	for i := 0; i < n.opts.MaxFaults && len(kinds) > 0; i++ {
		if !sleepCtx(ctx, between(n.rng, n.opts.CalmMin, n.opts.CalmMax)) {
			return
		}
		if bounded && time.Until(deadline) < n.opts.HoldMax {
			return
		}
		f := n.inject(ctx, kinds[i%len(kinds)])
		n.mu.Lock()
		n.faults = append(n.faults, f)
		n.mu.Unlock()
	}
}

func (n *nemesis) pick(ctx context.Context, preferLeader bool) (string, bool) {
	if preferLeader {
		if l, err := FindLeader(ctx, n.c); err == nil {
			return l, true
		}
	}
	nodes := n.c.Nodes()
	return nodes[n.rng.IntN(len(nodes))], false
}

// failpoint returns a hurt that sets a failpoint and the heal that clears it.
func (n *nemesis) failpoint(name, term string) (hurt, heal func(context.Context, string) error) {
	return func(ctx context.Context, node string) error { return n.c.Failpoint(ctx, node, name, term) },
		func(ctx context.Context, node string) error { return n.c.Failpoint(ctx, node, name, "") }
}

// rejoined heals the wipe nemesis: the node, started empty, must be a
// voter again.
func (n *nemesis) rejoined(ctx context.Context, node string) error {
	if d, ok := waitVoter(ctx, n.c, node, true, 30*time.Second); ok {
		n.note = fmt.Sprintf("a voter %s after the hold", d.Round(time.Second))
	} else {
		n.note = "not a voter 30s after the hold"
	}
	return nil
}

// wipeBehindLaggingPeer is the wipe that loses data on a cluster where an
// empty node still votes (issue 8's amnesia): with leader L and followers
// B and C, B is paused so that writes are acknowledged by L and C alone;
// then C and L are killed, C is wiped and started empty, and B thawed. If
// empty C votes, B (without those writes) wins and they are lost; L comes
// back once a leader is known (or after 15 s) and must not keep them
// either. ok is false when there is no leader to start from.
func (n *nemesis) wipeBehindLaggingPeer(ctx context.Context) (Fault, bool) {
	leader, err := FindLeader(ctx, n.c)
	if err != nil {
		return Fault{}, false
	}
	var others []string
	for _, x := range n.c.Nodes() {
		if x != leader {
			others = append(others, x)
		}
	}
	n.rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	lagging, victim := others[0], others[1]
	f := Fault{Kind: NemesisWipe, Node: victim, Start: n.clock.now(), Also: []string{leader},
		Note: fmt.Sprintf("behind a lagging peer: %s paused, %s (leader) killed", lagging, leader)}
	n.logger.Info("fault", "kind", NemesisWipe, "node", victim, "lagging", lagging, "leader", leader)
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
	defer cancel()
	step := func(err error) bool {
		if err != nil && f.Err == "" {
			f.Err = err.Error()
		}
		return err == nil
	}
	if step(n.c.Pause(hctx, lagging)) {
		sleepCtx(hctx, between(n.rng, time.Second, 2*time.Second))
		step(n.c.Kill(hctx, victim))
		step(n.c.Kill(hctx, leader))
		step(n.c.Replace(hctx, victim))
		step(n.c.Resume(hctx, lagging))
		if l, err := WaitLeader(hctx, n.c, 15*time.Second); err == nil {
			f.Note += fmt.Sprintf("; %s led without it", l)
		}
	}
	// Heal whatever happened: every node running and thawed.
	_ = n.c.Resume(hctx, lagging)
	for attempt := 0; attempt < 3; attempt++ {
		if waitNode(hctx, n.c, leader, time.Second) == nil || step(n.c.Start(hctx, leader)) {
			break
		}
	}
	f.End = n.clock.now()
	n.logger.Info("healed", "kind", NemesisWipe, "node", victim, "after", time.Duration(f.End-f.Start).Round(time.Millisecond))
	return f, true
}

// settled waits, at most d, until every node answers and is a voter. A
// fault that loses a disk (remove, wipe) starts only then: after a heal
// that failed, a second disk loss would take two voters' state at once,
// which no raft cluster survives without an operator, and the run would
// test the harness rather than kvnode. A stopped node is started again.
func (n *nemesis) settled(ctx context.Context, d time.Duration) error {
	sctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	// Every node first: the voters may need the missing one for a quorum.
	for _, node := range n.c.Nodes() {
		// Start leaves a running node as it is.
		if err := n.c.Start(sctx, node); err != nil {
			return fmt.Errorf("%s: %w", node, err)
		}
	}
	for _, node := range n.c.Nodes() {
		if _, ok := waitVoter(sctx, n.c, node, true, d); !ok {
			return fmt.Errorf("%s is not a voter after %s", node, d)
		}
	}
	return nil
}

func (n *nemesis) inject(ctx context.Context, kind string) Fault {
	if kind == NemesisReplace || kind == NemesisWipe {
		if err := n.settled(ctx, n.opts.Settle); err != nil {
			n.logger.Warn("disk-loss fault skipped: the cluster is not whole", "kind", kind, "err", err)
			return Fault{Kind: kind, Start: n.clock.now(), End: n.clock.now(), Err: "skipped: " + err.Error()}
		}
	}
	var node, note string
	var leader bool
	var offset time.Duration
	var hurt, heal func(context.Context, string) error
	switch kind {
	case NemesisKill:
		node, leader = n.pick(ctx, n.rng.IntN(2) == 0)
		hurt, heal = n.c.Kill, n.c.Start
	case NemesisPause:
		node, leader = n.pick(ctx, n.rng.IntN(2) == 0)
		hurt, heal = n.c.Pause, n.c.Resume
	case NemesisPartition:
		node, leader = n.pick(ctx, false)
		hurt, heal = n.c.Isolate, n.c.Rejoin
	case NemesisLeader:
		node, leader = n.pick(ctx, true)
		hurt, heal = n.c.Isolate, n.c.Rejoin
	case NemesisReplace:
		node, leader = n.pick(ctx, false)
		hurt, heal = n.c.Kill, n.replace
	case NemesisWipe:
		n.wipes++
		if n.wipes%2 == 1 {
			if f, ok := n.wipeBehindLaggingPeer(ctx); ok {
				return f
			}
		}
		node, leader = n.pick(ctx, n.rng.IntN(2) == 0)
		hurt, heal = n.c.Replace, n.rejoined
	case NemesisSkew:
		node, leader = n.pick(ctx, n.rng.IntN(2) == 0)
		offset = between(n.rng, 2*time.Second, 5*time.Second).Round(100 * time.Millisecond)
		if n.rng.IntN(2) == 0 {
			offset = -offset
		}
		note = fmt.Sprintf("clock %+v", offset)
		hurt, heal = n.failpoint(FailpointClock, fmt.Sprintf("offset(%s)", offset))
	case NemesisSlowDisk:
		node, leader = n.pick(ctx, n.rng.IntN(2) == 0)
		d := between(n.rng, 20*time.Millisecond, 150*time.Millisecond).Round(time.Millisecond)
		note = fmt.Sprintf("raft log writes +%s", d)
		hurt, heal = n.failpoint(FailpointRaftLogs, fmt.Sprintf("sleep(%s)", d))
	case NemesisSlowFSM:
		node, leader = n.pick(ctx, n.rng.IntN(2) == 0)
		d := between(n.rng, 50*time.Millisecond, 300*time.Millisecond).Round(time.Millisecond)
		note = fmt.Sprintf("state machine batches +%s", d)
		hurt, heal = n.failpoint(FailpointFSM, fmt.Sprintf("sleep(%s)", d))
	default:
		return Fault{Kind: kind, Err: "unknown nemesis"}
	}
	f := Fault{Kind: kind, Node: node, Leader: leader, Start: n.clock.now(), Offset: offset}
	n.note = note
	n.logger.Info("fault", "kind", kind, "node", node, "leader", leader)
	if err := hurt(ctx, node); err != nil {
		f.End, f.Err = n.clock.now(), err.Error()
		if !isUnsupported(err) {
			n.logger.Warn("fault failed", "kind", kind, "node", node, "err", err)
		}
		return f
	}
	sleepCtx(ctx, between(n.rng, n.opts.HoldMin, n.opts.HoldMax))
	// Heal even when the run is over: the checks need every node back.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	// A node that dies while healing (a crash the checks report) is healed
	// again, a bounded number of times, so the run can go on.
	for attempt := 0; attempt < 3; attempt++ {
		err := heal(hctx, node)
		if err == nil {
			break
		}
		f.Err = fmt.Sprintf("heal: %v", err)
		n.logger.Warn("heal failed", "kind", kind, "node", node, "attempt", attempt+1, "err", err)
	}
	f.End = n.clock.now()
	f.Note = n.note
	n.logger.Info("healed", "kind", kind, "node", node, "after", time.Duration(f.End-f.Start).Round(time.Millisecond))
	return f
}

func (n *nemesis) list() []Fault {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Fault(nil), n.faults...)
}
