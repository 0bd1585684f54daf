package harness

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kvnode/kvnode/client"
	"github.com/kvnode/kvnode/rpc"
)

// The evict workload's checks must know which keys the cluster evicted and
// when. Evictions are replicated events: only the leader decides them, they
// enter the raft log, and every node applies the same ones; kvnode's admin
// Events call (behind `kvnode events`) decodes the log a node still holds.
// A node keeps its log only for a while after each snapshot, so the harness
// follows every node's log during the run (blocking queries, as `kvnode
// events --follow` does), keeps the bounded storage's events, and
// afterwards turns each eviction into a window of run time:
//
//   - Upper: the earliest time a node's reply held the eviction. A node
//     returns only entries it has applied, hence committed: the eviction
//     took effect before then.
//   - Lower: the leader's stamp (Op.Now), less the clock bound and the
//     largest forward offset the skew nemesis can have put into a stamp
//     then (clockAhead). The eviction was decided after the stamp's real
//     time, and takes effect later still.
//
// Entries that no node's reader saw (compacted away on every node first)
// and evict events that name more keys than they list become wildcards:
// any key of the storage may have gone in that window. That weakens the
// check there but keeps it sound.

// BoundedStorage is the bounded storage of jepsen/docker/kvnode.yaml
// (max_memory 128KiB, eviction random), the evict workload's.
const BoundedStorage = "memory_evict_lin"

// Eviction is a window of run time in which the cluster may have evicted
// Keys of Storage, or any of its keys when All.
type Eviction struct {
	Index   uint64   `json:"index"`
	Storage string   `json:"storage"`
	Keys    []string `json:"keys,omitempty"`
	All     bool     `json:"all,omitempty"`
	Lower   int64    `json:"lower"`
	Upper   int64    `json:"upper"`
	Note    string   `json:"note,omitempty"`
}

// covers reports whether the eviction may have removed key of storage.
func (e Eviction) covers(storage, key string) bool {
	return e.Storage == storage && (e.All || slices.Contains(e.Keys, key))
}

// eventRecord and eventsPage mirror cluster.EventRecord and
// cluster.EventsPage (gob matches fields by name), as NodeStatus mirrors
// the status reply.
type eventRecord struct {
	Index    uint64
	Term     uint64
	Time     time.Time
	Storage  string
	Op       string
	Keys     []string
	KeyCount int
	Reason   string
}

type eventsPage struct {
	Events  []eventRecord
	Next    uint64
	Skipped uint64
	Applied uint64
}

// span is the log indexes [from, to).
type span struct{ from, to uint64 }

// skipSpan is a span a node had compacted before its reader got there,
// learnt at run time at (the entries were applied there by then).
type skipSpan struct {
	span
	at int64
}

// seenEntry is what one node's log held at one index for the storage.
type seenEntry struct {
	// fp hashes the entry's records: what the nodes must agree on.
	fp   uint64
	desc string
	// stamp is the leader's stamp in run time; at when the reply came.
	stamp, at int64
	evicts    []eventRecord
}

// nodeLog is what the harness read of one node's event log.
type nodeLog struct {
	next    uint64
	covered []span // merged, ascending
	skipped []skipSpan
	entries map[uint64]seenEntry
	polls   int
	errs    int
}

func (n *nodeLog) covers(i uint64) bool {
	k, _ := slices.BinarySearchFunc(n.covered, i, func(s span, i uint64) int {
		if s.to <= i {
			return -1
		}
		if s.from > i {
			return 1
		}
		return 0
	})
	return k < len(n.covered) && n.covered[k].from <= i && i < n.covered[k].to
}

// addSpan adds s to spans, merged and ascending; s never starts before
// the last span (a reader moves forward).
func addSpan(spans []span, s span) []span {
	if s.to <= s.from {
		return spans
	}
	if l := len(spans); l > 0 && s.from <= spans[l-1].to {
		spans[l-1].to = max(spans[l-1].to, s.to)
		return spans
	}
	return append(spans, s)
}

// EventFollower reads one storage's events from every node's raft log.
type EventFollower struct {
	storage string
	token   string
	clock   runClock
	mu      sync.Mutex
	nodes   map[string]*nodeLog
}

// Following limits: a blocking query waits followWait for news; after a
// page that caught up the reader pauses followPause, so three readers cost
// the cluster at most a few calls a second each; a run of the longest
// documented length polls far fewer than maxPolls times.
const (
	followWait  = 2 * time.Second
	followPause = 50 * time.Millisecond
	maxPolls    = 10_000_000
	maxPage     = 1000
)

func newEventFollower(storage, token string, clock runClock, nodes []string) *EventFollower {
	f := &EventFollower{storage: storage, token: token, clock: clock, nodes: map[string]*nodeLog{}}
	for _, n := range nodes {
		f.nodes[n] = &nodeLog{next: 1, entries: map[uint64]seenEntry{}}
	}
	return f
}

// follow reads node's events until ctx ends, reconnecting after errors.
func (f *EventFollower) follow(ctx context.Context, c Cluster, node string) {
	var cl *client.Client
	defer func() {
		if cl != nil {
			_ = cl.Close()
		}
	}()
	for i := 0; i < maxPolls && ctx.Err() == nil; i++ {
		page, err := f.pollOnce(ctx, c, node, &cl, followWait)
		if err != nil {
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		if page.Next > page.Applied { // caught up (or nothing new): let the node breathe
			sleepCtx(ctx, followPause)
		}
	}
}

// drain reads every node's events up to what it has applied, at most d
// per node: the followers' last pages may be a poll behind.
func (f *EventFollower) drain(ctx context.Context, c Cluster, d time.Duration) {
	for _, node := range c.Nodes() {
		var cl *client.Client
		deadline := time.Now().Add(d)
		for i := 0; i < 10_000 && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
			page, err := f.pollOnce(ctx, c, node, &cl, 0)
			if err != nil {
				sleepCtx(ctx, 200*time.Millisecond)
				continue
			}
			if page.Next > page.Applied {
				break
			}
		}
		if cl != nil {
			_ = cl.Close()
		}
	}
}

// pollOnce asks node for the events from its reader's next index on,
// dialling *cl when needed (and dropping it after an error), and records
// the page.
func (f *EventFollower) pollOnce(ctx context.Context, c Cluster, node string, cl **client.Client, wait time.Duration) (eventsPage, error) {
	f.mu.Lock()
	since := f.nodes[node].next
	f.nodes[node].polls++
	f.mu.Unlock()
	var page eventsPage
	err := func() error {
		if *cl == nil {
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			d, err := client.Dial(dctx, c.Addr(node), client.WithPoolSize(1))
			if err != nil {
				return err //nolint:wrapcheck // counted, never shown
			}
			*cl = d
		}
		cctx, cancel := context.WithTimeout(ctx, wait+3*time.Second)
		defer cancel()
		args := rpc.EventsArgs{AdminAuth: rpc.AdminAuth{Token: f.token}, Since: since, Storage: f.storage, Max: maxPage, Wait: wait}
		return (*cl).Call(cctx, rpc.MethodEvents, args, &page)
	}()
	if err != nil {
		if *cl != nil {
			_ = (*cl).Close()
			*cl = nil
		}
		f.mu.Lock()
		f.nodes[node].errs++
		f.mu.Unlock()
		return page, err
	}
	f.record(node, since, page, f.clock.now())
	return page, nil
}

// record files a page node answered at run time at for the events from
// since on. The entries it skipped are a prefix from since (compaction
// removes a prefix of the log); those it read follow up to page.Next.
func (f *EventFollower) record(node string, since uint64, page eventsPage, at int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[node]
	if page.Skipped > 0 {
		n.skipped = append(n.skipped, skipSpan{span{since, since + page.Skipped}, at})
	}
	n.covered = addSpan(n.covered, span{since + page.Skipped, page.Next})
	for _, ev := range page.Events {
		e, ok := n.entries[ev.Index]
		if !ok {
			e = seenEntry{stamp: f.clock.fromWall(ev.Time), at: at}
		}
		h := fnv.New64a()
		_, _ = fmt.Fprintf(h, "%d|%d|%s|%s|%d|%s|", e.fp, ev.Term, ev.Op, strings.Join(ev.Keys, ","), ev.KeyCount, ev.Reason)
		e.fp = h.Sum64()
		if e.desc != "" {
			e.desc += "; "
		}
		e.desc += fmt.Sprintf("term %d %s %s", ev.Term, ev.Op, strings.Join(ev.Keys[:min(len(ev.Keys), 4)], ","))
		if ev.Op == "evict" {
			e.evicts = append(e.evicts, ev)
		}
		n.entries[ev.Index] = e
	}
	n.next = max(n.next, page.Next)
}

// EventReport is what the followers found, turned into eviction windows.
type EventReport struct {
	Storage   string
	Evictions []Eviction
	// Anomalies: nodes whose logs held different events at one index.
	Anomalies []Anomaly
	// Entries counts the storage's log entries seen, Evicted the keys
	// the evictions named, Gaps the wildcards for entries no reader saw.
	Entries, Evicted, Gaps int
	Polls, Errors          int
}

// Report turns what the followers read into eviction windows (see the top
// of this file), given the run's faults (skew offsets) and the clock
// bound, and compares the nodes' logs index by index.
func (f *EventFollower) Report(faults []Fault, clockBound time.Duration) EventReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	rep := EventReport{Storage: f.storage}
	lower := func(stamp int64) int64 { return stamp - int64(clockBound) - int64(clockAhead(faults, stamp)) }
	names := slices.Sorted(maps.Keys(f.nodes))
	union := map[uint64]bool{}
	var last uint64 // the highest index any reader reached
	for _, name := range names {
		n := f.nodes[name]
		rep.Polls += n.polls
		rep.Errors += n.errs
		for i := range n.entries {
			union[i] = true
		}
		last = max(last, n.next)
	}
	indexes := slices.Sorted(maps.Keys(union))
	rep.Entries = len(indexes)
	// bestLower[k]: the latest lower bound among entries up to indexes[k].
	bestLower := make([]int64, len(indexes))
	diverged := 0
	for k, i := range indexes {
		var ref *seenEntry
		var refNode string
		for _, name := range names {
			n := f.nodes[name]
			e, ok := n.entries[i]
			if !ok && !n.covers(i) {
				continue // this node's reader never read index i
			}
			if ref == nil {
				ref, refNode = &e, name
				continue
			}
			if e.fp != ref.fp {
				diverged++
				if diverged <= 5 {
					rep.Anomalies = append(rep.Anomalies, Anomaly{Check: "convergence", Detail: fmt.Sprintf(
						"event log: index %d of %s: %s on %s, %s on %s", i, f.storage, orNothing(ref.desc), refNode, orNothing(e.desc), name)})
				}
			}
		}
		// Each version of the entry (one, unless nodes disagree: then
		// every version counts, more windows, never fewer) with the
		// earliest time a node's reply held it.
		versions := map[uint64]seenEntry{}
		for _, name := range names {
			e, ok := f.nodes[name].entries[i]
			if !ok {
				continue
			}
			if v, seen := versions[e.fp]; seen {
				e.at = min(e.at, v.at)
			}
			versions[e.fp] = e
		}
		// Where nodes disagree only one version was committed, so the
		// entry's lower bound is the smallest of theirs.
		bestLower[k] = math.MaxInt64
		for _, fp := range slices.Sorted(maps.Keys(versions)) {
			e := versions[fp]
			bestLower[k] = min(bestLower[k], lower(e.stamp))
			for _, ev := range e.evicts {
				rep.Evicted += ev.KeyCount
				x := Eviction{Index: i, Storage: f.storage, Keys: ev.Keys, Lower: lower(e.stamp), Upper: e.at, Note: ev.Reason}
				if ev.KeyCount > len(ev.Keys) {
					x.All, x.Note = true, fmt.Sprintf("%s: %d keys named, %d listed", ev.Reason, ev.KeyCount, len(ev.Keys))
				}
				rep.Evictions = append(rep.Evictions, x)
			}
		}
		if k > 0 {
			bestLower[k] = max(bestLower[k], bestLower[k-1])
		}
	}
	if diverged > 5 {
		rep.Anomalies = append(rep.Anomalies, Anomaly{Check: "convergence", Detail: fmt.Sprintf("event log: %d more indexes of %s differ between nodes", diverged-5, f.storage)})
	}
	for _, g := range gaps(f.nodes, last) {
		x := Eviction{Index: g.from, Storage: f.storage, All: true, Upper: math.MaxInt64,
			Note: fmt.Sprintf("log entries %d-%d compacted on every node before a reader got them", g.from, g.to-1)}
		if k, _ := slices.BinarySearch(indexes, g.from); k > 0 {
			x.Lower = bestLower[k-1] // they were appended after every entry before them
		}
		var latest int64 = -1
		for _, name := range names {
			for _, s := range f.nodes[name].skipped {
				if s.from < g.to && g.from < s.to {
					latest = max(latest, s.at)
				}
			}
		}
		if latest >= 0 {
			x.Upper = latest
		}
		rep.Gaps++
		rep.Evictions = append(rep.Evictions, x)
	}
	return rep
}

func orNothing(s string) string {
	if s == "" {
		return "no event"
	}
	return s
}

// gaps are the indexes in [1, last) that no node's reader read.
func gaps(nodes map[string]*nodeLog, last uint64) []span {
	var all []span
	for _, n := range nodes {
		all = append(all, n.covered...)
	}
	slices.SortFunc(all, func(a, b span) int {
		switch {
		case a.from < b.from:
			return -1
		case a.from > b.from:
			return 1
		}
		return 0
	})
	var merged []span
	for _, s := range all {
		merged = addSpan(merged, s)
	}
	var out []span
	at := uint64(1)
	for _, s := range merged {
		if s.from > at {
			out = append(out, span{at, min(s.from, last)})
		}
		at = max(at, s.to)
	}
	if at < last {
		out = append(out, span{at, last})
	}
	return slices.DeleteFunc(out, func(s span) bool { return s.to <= s.from })
}

// clockAhead is how far ahead of real time a stamp s (run time) can be:
// a node stamps max(its clock, the replicated clock), so a stamp runs
// ahead by at most a forward offset the skew nemesis set on some node
// before s, carried by the replicated clock until real time catches up
// (o after the fault ended). A fault whose heal failed may still hold.
func clockAhead(faults []Fault, s int64) time.Duration {
	var most time.Duration
	for _, f := range faults {
		if f.Offset <= 0 {
			continue
		}
		end := f.End
		if f.Err != "" {
			end = math.MaxInt64 - int64(f.Offset)
		}
		if f.Start < s && end+int64(f.Offset) >= s {
			most = max(most, f.Offset)
		}
	}
	return most
}
