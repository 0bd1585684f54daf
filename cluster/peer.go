package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/fsm"
	eventlog "github.com/kvnode/kvnode/log"
)

// The peer protocol: what nodes call on each other over the cluster port,
// inside its TLS and identity checks (mux.go), as net/rpc service
// "Cluster" with gob. This file is the server half: every method with its
// arguments and reply, and how an outcome is encoded; peerclient.go is the
// client half, which decodes them. The methods:
//
//	Propose      a follower's writes, in the event log's encoding (older followers: ApplyBatch)
//	ReadIndex    an index covering every write acknowledged so far (linearizable reads)
//	Nudge        propagate the commit index now (a follower waits to apply)
//	Ping         who are you, how far are you, which leader do you know
//	Join         add me (static peers; a new incarnation)
//	Remove       remove me (leave_on_terminate)
//	Watch        answer when you stop leading (followers notice a dead leader)
//	Hints        keys my clients read (lru across nodes)
//
// A new method is a new name, so a node of an older version refuses it
// before running anything (net/rpc's "can't find method"), which the
// caller reads as "not sent".

const peerService = "Cluster"

// Result codes: which of the package's outcome classes the callee met, so
// the caller returns the same one.
const (
	codeOK      uint8 = iota
	codeRetry         // not leader (any more) or not enqueued: nothing applied
	codeUnknown       // proposed, outcome unknown
	codeApply         // refused (by the state machine, or the request): Kind and Text say why
)

// wireErrors are the refusals that keep their identity across the hop:
// Result.Kind names one, and the caller rebuilds an error that wraps it
// (peerclient.go), so errors.Is works on either side.
var wireErrors = []struct {
	kind string
	err  error
}{
	{"full", drivers.ErrFull},
	{"empty_key", drivers.ErrEmptyKey},
	{"bad_limit", drivers.ErrBadLimit},
	{"unknown_storage", fsm.ErrUnknownStorage},
	{"last_voter", ErrLastVoter},
	{"not_member", errNotMember},
	{"corrupt_event", eventlog.ErrCorrupt},
}

// Result is the outcome of one write (or of a membership change).
type Result struct {
	Code uint8
	// Kind names the sentinel of a codeApply refusal (wireErrors), "" when
	// none applies; Text is the error's text.
	Kind  string
	Text  string
	Index uint64
}

// resultOf encodes what became of a write.
func resultOf(o outcome) Result {
	r := Result{Index: o.idx}
	switch {
	case o.retry:
		r.Code = codeRetry
	case errors.Is(o.err, ErrOutcomeUnknown), errors.Is(o.err, ErrShutdown):
		r.Code, r.Text = codeUnknown, o.err.Error()
	case o.err != nil:
		r.Code, r.Text = codeApply, o.err.Error()
		for _, w := range wireErrors {
			if errors.Is(o.err, w.err) {
				r.Kind = w.kind
				break
			}
		}
	}
	return r
}

// peer is the server half of the protocol: one per node.
type peer struct{ n *Node }

// ProposeArgs carries writes a follower forwards together, each in the
// event log's encoding (the leader checks each by decoding it).
type ProposeArgs struct {
	Events [][]byte
	// Timeout is the longest remaining budget among the writes.
	Timeout time.Duration
	// Trace is the forwarding span's context (W3C traceparent; trace.go);
	// gob leaves it empty for and from a version without it.
	Trace map[string]string
}

// ProposeReply holds one result per event, in order.
type ProposeReply struct {
	Results []Result
}

// Propose commits forwarded events if this node leads, in the leader's
// batches (propose.go). An event that does not decode is refused alone.
func (p *peer) Propose(args ProposeArgs, reply *ProposeReply) error {
	n := p.n
	ctx, cancel := context.WithTimeout(n.ctx, min(args.Timeout, n.cfg.ApplyTimeout))
	defer cancel()
	ctx, sp := n.startSpan(extractTrace(ctx, args.Trace), "cluster.propose", trace.SpanKindServer,
		attribute.Int("kv.writes", len(args.Events)))
	defer endSpan(sp, nil)
	reply.Results = make([]Result, len(args.Events))
	events := make([]eventlog.Event, 0, len(args.Events))
	at := make([]int, 0, len(args.Events))
	for i, raw := range args.Events {
		ev, err := eventlog.Decode(raw)
		if err != nil {
			reply.Results[i] = resultOf(outcome{err: fmt.Errorf("forwarded event: %w", err)})
			continue
		}
		events = append(events, ev)
		at = append(at, i)
	}
	for j, o := range n.leaderBatcher.applyAll(ctx, events, remaining(ctx, n.cfg.ApplyTimeout)) {
		reply.Results[at[j]] = resultOf(o)
	}
	return nil
}

// ApplyBatchArgs carries writes forwarded together by followers older than
// Propose (gob-encoded events).
type ApplyBatchArgs struct {
	Events  []eventlog.Event
	Timeout time.Duration
}

// ApplyBatchReply holds one result per event, in order.
type ApplyBatchReply struct {
	Results []Result
}

// ApplyBatch is Propose for followers older than it.
func (p *peer) ApplyBatch(args ApplyBatchArgs, reply *ApplyBatchReply) error {
	n := p.n
	ctx, cancel := context.WithTimeout(n.ctx, min(args.Timeout, n.cfg.ApplyTimeout))
	defer cancel()
	reply.Results = make([]Result, len(args.Events))
	for i, o := range n.leaderBatcher.applyAll(ctx, args.Events, remaining(ctx, n.cfg.ApplyTimeout)) {
		reply.Results[i] = resultOf(o)
	}
	return nil
}

// ReadIndexArgs asks the leader for an index that covers every write
// acknowledged so far.
type ReadIndexArgs struct{ Timeout time.Duration }

// ReadIndexReply carries that index.
type ReadIndexReply struct {
	Code  uint8
	Index uint64
}

// ReadIndex confirms leadership and returns the read index (readindex.go);
// reads forwarded by every follower share the leader's rounds.
func (p *peer) ReadIndex(args ReadIndexArgs, reply *ReadIndexReply) error {
	ctx, cancel := context.WithTimeout(p.n.ctx, min(args.Timeout, p.n.cfg.ApplyTimeout))
	defer cancel()
	idx, addr, ok := p.n.readIndexOnce(ctx)
	if !ok || addr != "" { // addr != "": this node no longer leads
		reply.Code = codeRetry
		return nil
	}
	reply.Index = idx
	return nil
}

// NudgeArgs asks the leader to propagate its commit index.
type NudgeArgs struct{ Index uint64 }

// NudgeReply is empty.
type NudgeReply struct{}

// Nudge appends a barrier unless one is on its way (nudge.go).
func (p *peer) Nudge(_ NudgeArgs, _ *NudgeReply) error {
	p.n.nudge()
	return nil
}

// PingArgs asks a node who it is.
type PingArgs struct{}

// PingReply names the node behind a cluster port and how far it is.
type PingReply struct {
	ID string
	// Leaving is set once the node is shutting down: do not add it.
	Leaving bool
	// Incarnation is the node's incarnation (identity.go).
	Incarnation string
	// HasState: the node belongs to a cluster (it holds raft entries).
	HasState bool
	// LastIndex is the node's last raft log index: how far it caught up.
	LastIndex uint64
	// Leader is the raft address of the leader the node knows, if any.
	Leader string
	// LogVersion is the newest event log the node can apply
	// (eventlog.LogVersion; 0 from nodes older than batches).
	LogVersion int
}

// Ping answers a node checking this node's cluster port: a leader before
// counting on a member, a static peer before bootstrapping.
func (p *peer) Ping(_ PingArgs, reply *PingReply) error {
	n := p.n
	reply.ID = n.cfg.NodeID
	reply.Leaving = n.leaving.Load()
	reply.Incarnation = n.id.Incarnation
	reply.LastIndex = n.raft.LastIndex()
	reply.HasState = reply.LastIndex > 0
	_, reply.Leader = n.Leader()
	reply.LogVersion = eventlog.LogVersion
	return nil
}

// JoinArgs asks the leader to add a node without raft state.
type JoinArgs struct {
	ID string
	// Addr is the node's raft address, tagged with its incarnation.
	Addr    string
	Timeout time.Duration
}

// Join adds the asking node if this node leads (admit, staticjoin.go):
// codeOK (a member, or just added as a non-voter), codeRetry (this node
// does not lead) or codeApply.
func (p *peer) Join(args JoinArgs, reply *Result) error {
	n := p.n
	if !n.IsLeader() {
		reply.Code = codeRetry
		return nil
	}
	ctx, cancel := context.WithTimeout(n.ctx, min(args.Timeout, n.cfg.ApplyTimeout))
	defer cancel()
	*reply = membershipResult(n.admit(ctx, args.ID, args.Addr))
	return nil
}

// RemoveArgs asks the leader to remove a member that is leaving.
type RemoveArgs struct {
	ID      string
	Timeout time.Duration
}

// Remove removes a leaving member if this node leads (leave.go).
func (p *peer) Remove(args RemoveArgs, reply *Result) error {
	ctx, cancel := context.WithTimeout(p.n.ctx, min(args.Timeout, p.n.cfg.ApplyTimeout))
	defer cancel()
	*reply = membershipResult(p.n.removeServer(ctx, args.ID))
	return nil
}

// membershipResult encodes the outcome of a configuration change.
func membershipResult(err error) Result {
	switch {
	case err == nil:
		return Result{}
	case errors.Is(err, ErrNoLeader), errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
		return Result{Code: codeRetry}
	}
	return resultOf(outcome{err: err})
}

// WatchArgs opens a watch on the leader.
type WatchArgs struct{}

// WatchReply says whether the node still leads.
type WatchReply struct{ Leader bool }

// Watch answers when this node stops leading, stops, or after watchHold
// (watch.go).
func (p *peer) Watch(_ WatchArgs, reply *WatchReply) error {
	reply.Leader = p.n.holdWatch()
	return nil
}

// HintsArgs carries the keys a follower's clients read lately, by
// storage (hints.go).
type HintsArgs struct {
	Keys map[string][]string
}

// HintsReply is empty.
type HintsReply struct{}

// Hints stamps the keys as used now, on the leader.
func (p *peer) Hints(args HintsArgs, _ *HintsReply) error {
	p.n.takeHints(args.Keys)
	return nil
}
