package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
	eventlog "github.com/kvnode/kvnode/log"
)

// The event log, visible: Events decodes the entries still in this node's
// raft log, up to what its state machine has applied, a page at a time,
// and waits for the next ones like a Consul blocking query. Nothing is
// buffered for a reader: each call reads the log afresh from the index it
// names, so a slow reader costs the node nothing, and one that falls behind
// compaction is told how many entries it missed (Skipped) and goes on from
// the oldest one left.

// Limits of one Events call.
const (
	// maxEventsPage bounds the events one call returns.
	maxEventsPage = 1000
	// maxEventKeys bounds the keys listed for one event (KeyCount has
	// them all).
	maxEventKeys = 1024
	// maxEventsBytes bounds the keys one call returns, in bytes.
	maxEventsBytes = 1 << 20
)

// EventsQuery asks for events from Since on.
type EventsQuery struct {
	// Since is the first log index wanted; 0 means the oldest still held.
	Since uint64
	// Storage keeps only that storage's events ("" = all, ticks included).
	Storage string
	// Max bounds the events returned (maxEventsPage when 0 or above).
	Max int
	// Wait is how long to wait for an entry at or after Since to be
	// applied when none is yet (0: answer at once).
	Wait time.Duration
}

// EventRecord is one event as `kvnode events` shows it. Field names are
// its JSON.
type EventRecord struct {
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// Time is the clock the leader stamped the event with (Op.Now): when
	// it was decided, the same on every node.
	Time    time.Time `json:"time"`
	Storage string    `json:"storage,omitempty"`
	Op      string    `json:"op"`
	// Keys are the keys the event names (written, deleted, expired or
	// evicted), at most maxEventKeys; KeyCount is how many it names.
	Keys     []string `json:"keys,omitempty"`
	KeyCount int      `json:"key_count"`
	// Reason says why keys left without a client asking: for expire
	// "deadline passed", for evict the limit that needed room.
	Reason string `json:"reason,omitempty"`
	// Limits are what a limit event set.
	Limits string `json:"limits,omitempty"`
}

// EventsPage is one answer of Events.
type EventsPage struct {
	Events []EventRecord `json:"events"`
	// Next is the index to ask for next.
	Next uint64 `json:"next"`
	// Skipped counts the entries from Since on that the log no longer
	// holds (compacted into a snapshot before they were read).
	Skipped uint64 `json:"skipped,omitempty"`
	// Applied is this node's applied index when the page was read.
	Applied uint64 `json:"applied"`
}

// Events returns the events from q.Since on that this node has applied,
// decoded from its raft log, waiting up to q.Wait for one when there is
// none yet.
func (n *Node) Events(ctx context.Context, q EventsQuery) (EventsPage, error) {
	if n.closed.Load() {
		return EventsPage{}, ErrShutdown
	}
	since := q.Since
	first, err := n.stores.Log.FirstIndex()
	if err != nil {
		return EventsPage{}, err // the log store's own error
	}
	if since == 0 {
		since = max(first, 1)
	}
	if q.Wait > 0 && n.fsm.AppliedIndex() < since {
		wctx, cancel := context.WithTimeout(ctx, q.Wait)
		_ = n.fsm.WaitApplied(wctx, since) // a timeout just answers with nothing new
		cancel()
	}
	page := EventsPage{Applied: n.fsm.AppliedIndex(), Next: since}
	if first, err = n.stores.Log.FirstIndex(); err != nil {
		return page, err
	}
	if since < first {
		page.Skipped, since = first-since, first
		page.Next = since
	}
	limit := q.Max
	if limit <= 0 || limit > maxEventsPage {
		limit = maxEventsPage
	}
	budget := maxEventsBytes
	for i := since; i <= page.Applied && len(page.Events) < limit && budget > 0; i++ {
		var l raft.Log
		if err := n.stores.Log.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				// Compacted while this call read: counted like the others.
				page.Skipped++
				page.Next = i + 1
				continue
			}
			return page, err
		}
		page.Next = i + 1
		if l.Type != raft.LogCommand {
			continue
		}
		for _, rec := range records(&l) {
			if q.Storage != "" && rec.Storage != q.Storage {
				continue
			}
			for _, k := range rec.Keys {
				budget -= len(k)
			}
			page.Events = append(page.Events, rec)
		}
	}
	return page, nil
}

// records decodes one command entry into a record per event (a batch entry
// holds several); none for one that does not decode (the state machine
// stopped on it, or skipped it as ignorable).
func records(l *raft.Log) []EventRecord {
	events, err := eventlog.DecodeEntry(l.Data)
	if err != nil {
		return nil
	}
	out := make([]EventRecord, 0, len(events))
	for _, ev := range events {
		out = append(out, record(l, ev))
	}
	return out
}

// record describes one event of the entry l.
func record(l *raft.Log, ev eventlog.Event) EventRecord {
	op := ev.Op
	rec := EventRecord{Index: l.Index, Term: l.Term, Time: time.Unix(0, op.Now).UTC(), Storage: ev.Storage, Op: op.Kind.String()}
	add := func(k string) {
		rec.KeyCount++
		if len(rec.Keys) < maxEventKeys {
			rec.Keys = append(rec.Keys, k)
		}
	}
	switch op.Kind {
	case drivers.OpSet, drivers.OpMExpire, drivers.OpExpire:
		for i := range op.Items {
			add(op.Items[i].Key)
		}
		if op.Kind == drivers.OpExpire {
			rec.Reason = "deadline passed"
		}
	case drivers.OpDelete:
		for _, k := range op.Keys {
			add(k)
		}
	case drivers.OpEvict:
		for i := range op.Victims {
			add(op.Victims[i].Key)
		}
		rec.Reason = op.Reason.String()
	case drivers.OpLimit:
		rec.Limits = op.Limits.String()
	case drivers.OpClear, drivers.OpTick:
	}
	return rec
}
