package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvnode/kvnode/drivers"
	eventlog "github.com/kvnode/kvnode/log"
)

// gate is a fake ApplyBatch transport for the batcher's queueing logic: it
// records every batch, and holds each one until released when closed.
type gate struct {
	mu      sync.Mutex
	batches [][]string // keys per batch, in send order
	entered chan int   // size of each batch as it starts
	release chan struct{}
	next    uint64
}

func newGate(hold bool) *gate {
	g := &gate{entered: make(chan int, 1024), release: make(chan struct{})}
	if !hold {
		close(g.release)
	}
	return g
}

func (g *gate) send(batch []*queuedWrite) {
	g.entered <- len(batch)
	<-g.release
	g.mu.Lock()
	defer g.mu.Unlock()
	keys := make([]string, len(batch))
	for i, w := range batch {
		keys[i] = w.ev.Op.Items[0].Key
		g.next++
		w.finish(outcome{idx: g.next})
	}
	g.batches = append(g.batches, keys)
}

func (g *gate) sent() [][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([][]string(nil), g.batches...)
}

func sizedEvent(key string, size int) eventlog.Event {
	return eventlog.Event{Storage: "mem", Op: drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{{Key: key, Value: make([]byte, size)}}}}
}

type applied struct {
	idx   uint64
	err   error
	retry bool
}

// goApply starts one write through b and returns where its outcome lands.
func goApply(ctx context.Context, b *batcher, key string, size int) <-chan applied {
	out := make(chan applied, 1)
	go func() {
		o := b.apply(ctx, sizedEvent(key, size), 5*time.Second)
		out <- applied(o)
	}()
	return out
}

// fillSlots starts maxBatchesInFlight writes that the gate holds.
func fillSlots(t *testing.T, b *batcher, g *gate) []<-chan applied {
	t.Helper()
	var outs []<-chan applied
	for i := range maxBatchesInFlight {
		outs = append(outs, goApply(t.Context(), b, fmt.Sprint("slot", i), 1))
		if n := <-g.entered; n != 1 {
			t.Fatalf("write with a free slot went in a batch of %d", n)
		}
	}
	return outs
}

// waitQueued polls until n writes wait in b's queue.
func waitQueued(t *testing.T, b *batcher, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		got := len(b.pending)
		b.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitIdle polls until b holds no slot and queues nothing.
func waitIdle(t *testing.T, b *batcher) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		inflight, pending := b.inflight, len(b.pending)
		b.mu.Unlock()
		if inflight == 0 && pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("batcher not idle: %d in flight, %d queued", inflight, pending)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBatcher_LoneWriteGoesAtOnce(t *testing.T) {
	g := newGate(false)
	b := &batcher{send: g.send}
	for i := range 3 {
		if r := <-goApply(t.Context(), b, fmt.Sprint("k", i), 1); r.err != nil || r.retry || r.idx != uint64(i+1) {
			t.Fatalf("write %d: %+v", i, r)
		}
	}
	if got := g.sent(); len(got) != 3 {
		t.Fatalf("batches %v, want one per sequential write", got)
	}
	waitIdle(t, b)
}

func TestBatcher_WritesArrivingWhileSlotsAreBusyGoTogether(t *testing.T) {
	g := newGate(true)
	b := &batcher{send: g.send}
	slots := fillSlots(t, b, g)
	// More than one batch's worth queues while every slot is busy.
	const queued = maxBatchEvents + 10
	var outs []<-chan applied
	for i := range queued {
		outs = append(outs, goApply(t.Context(), b, fmt.Sprint("q", i), 1))
	}
	waitQueued(t, b, queued)
	close(g.release)
	for i, out := range append(slots, outs...) {
		if r := <-out; r.err != nil || r.retry || r.idx == 0 {
			t.Fatalf("write %d: %+v", i, r)
		}
	}
	sizes := map[int]int{}
	for _, keys := range g.sent() {
		sizes[len(keys)]++
	}
	if sizes[1] != maxBatchesInFlight || sizes[maxBatchEvents] != 1 || sizes[10] != 1 {
		t.Fatalf("batch sizes %v: want %d lone writes, one full batch and the 10 left", sizes, maxBatchesInFlight)
	}
}

func TestBatcher_ByteBudgetSplitsBatches(t *testing.T) {
	g := newGate(true)
	b := &batcher{send: g.send}
	slots := fillSlots(t, b, g)
	// Three writes of 0.4 of the budget: two fit a batch, the third not.
	var outs []<-chan applied
	for i := range 3 {
		outs = append(outs, goApply(t.Context(), b, fmt.Sprint("big", i), maxBatchBytes*4/10))
		waitQueued(t, b, i+1) // keeps arrival order
	}
	// A write larger than the whole budget still goes, alone.
	outs = append(outs, goApply(t.Context(), b, "huge", 2*maxBatchBytes))
	waitQueued(t, b, 4)
	close(g.release)
	for _, out := range append(slots, outs...) {
		if r := <-out; r.err != nil {
			t.Fatal(r.err)
		}
	}
	var got []string
	for _, keys := range g.sent() {
		if !strings.HasPrefix(keys[0], "slot") {
			got = append(got, strings.Join(keys, "+"))
		}
	}
	slices.Sort(got) // concurrent sends finish in any order
	if want := "big0+big1,big2,huge"; strings.Join(got, ",") != want {
		t.Fatalf("batches %v, want %s", got, want)
	}
}

func TestBatcher_CallerGivingUpInTheQueueSendsNothing(t *testing.T) {
	g := newGate(true)
	b := &batcher{send: g.send}
	slots := fillSlots(t, b, g)
	ctx, cancel := context.WithCancel(t.Context())
	out := goApply(ctx, b, "gaveup", 1)
	waitQueued(t, b, 1)
	cancel()
	if r := <-out; r.err != nil || !r.retry {
		t.Fatalf("write dropped from the queue: %+v, want retry (nothing applied)", r)
	}
	// A write queued with an expired context when a batch forms is
	// dropped then, not sent.
	ctx2, cancel2 := context.WithCancel(t.Context())
	b.mu.Lock() // queue it and cancel it before any batch can take it
	w := &queuedWrite{ctx: ctx2, ev: sizedEvent("expired", 1), size: 1, queued: true, done: make(chan struct{}), deadline: time.Now().Add(time.Second)}
	b.pending = append(b.pending, w)
	cancel2()
	b.mu.Unlock()
	close(g.release)
	for _, out := range slots {
		<-out
	}
	<-w.done
	if w.out.err != nil || !w.out.retry {
		t.Fatalf("expired queued write: %+v", w.out)
	}
	for _, keys := range g.sent() {
		for _, k := range keys {
			if k == "gaveup" || k == "expired" {
				t.Fatalf("write %s was sent after its caller gave up: %v", k, g.sent())
			}
		}
	}
	waitIdle(t, b)
}

func TestBatcher_CallerGivingUpAfterSendingIsOutcomeUnknown(t *testing.T) {
	g := newGate(true)
	b := &batcher{send: g.send}
	ctx, cancel := context.WithCancel(t.Context())
	out := goApply(ctx, b, "sent", 1)
	<-g.entered
	cancel()
	r := <-out
	if !errors.Is(r.err, ErrOutcomeUnknown) || r.retry {
		t.Fatalf("write given up while sent: %+v, want outcome unknown", r)
	}
	close(g.release)
}

// A forwarded batch is one log entry (a solo leader needs no member's
// version to write batches), each event with its own result.
func TestApplyBatch_OneEntryEachEventWithItsOwnResult(t *testing.T) {
	n, e := openSolo(t, nil, slog.New(slog.DiscardHandler))
	fc := clientMux(t, nil)
	refused := setEvent("refused")
	refused.Storage = "nosuch"
	args := ApplyBatchArgs{Events: []eventlog.Event{setEvent("a"), refused, setEvent("b")}, Timeout: 5 * time.Second}
	var reply ApplyBatchReply
	if _, err := fc.call(t.Context(), n.Addr(), "ApplyBatch", args, &reply); err != nil {
		t.Fatal(err)
	}
	if len(reply.Results) != 3 {
		t.Fatalf("results %+v", reply.Results)
	}
	a, bad, b := reply.Results[0], reply.Results[1], reply.Results[2]
	if a.Code != codeOK || b.Code != codeOK || bad.Code != codeApply || !strings.Contains(bad.Text, "nosuch") {
		t.Fatalf("results %+v", reply.Results)
	}
	if a.Index == 0 || b.Index != a.Index {
		t.Fatalf("indexes %d, %d: want one log entry for the batch", a.Index, b.Index)
	}
	items, err := e.MGet(time.Now().UnixNano(), []string{"a", "b", "refused"})
	if err != nil || len(items) != 2 {
		t.Fatalf("applied items %+v, %v", items, err)
	}
	// net/rpc refuses a method the leader lacks before running anything,
	// which is how a follower tells an older leader from a failed batch.
	var r Result
	_, err = fc.call(t.Context(), n.Addr(), "NoSuchMethod", PingArgs{}, &r)
	if !isUnknownMethod(err) {
		t.Fatalf("unknown method: %v", err)
	}
}
