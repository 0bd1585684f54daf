package rrplugin_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvnode/kvnode/client"
)

// outcome of one write, as the writer saw it.
type outcome int

const (
	acked   outcome = iota // the call succeeded
	unknown                // sent, then lost: may or may not be applied
	refused                // provably not applied ("no leader ..., retry")
)

// writer is one PHP-like client writing its own keys through RoadRunner:
// each Set writes a fresh key "w<id>-<seq>" and its own counter "w<id>" in
// one batch, then reads the counter back.
type writer struct {
	id       int
	outcomes []outcome // by seq
	errs     []string  // unexpected errors
	acked    atomic.Int64
}

func (w *writer) counter() string    { return "w" + strconv.Itoa(w.id) }
func (w *writer) key(seq int) string { return fmt.Sprintf("w%d-%d", w.id, seq) }

// acks may be read while the writer runs.
func (w *writer) acks() int { return int(w.acked.Load()) }

// step makes one write and, after an ack, reads the counter back: the
// storage is linearizable, so it must say exactly seq (one writer per key).
func (w *writer) step(t *testing.T, php *client.Client) {
	seq := len(w.outcomes)
	v := []byte(strconv.Itoa(seq))
	err := php.Set(t.Context(), "app", client.Item{Key: w.key(seq), Value: v}, client.Item{Key: w.counter(), Value: v})
	switch {
	case err == nil:
		w.outcomes = append(w.outcomes, acked)
		w.acked.Add(1)
	case strings.Contains(err.Error(), "outcome unknown"):
		w.outcomes = append(w.outcomes, unknown)
		return
	case strings.Contains(err.Error(), "no leader: write not applied, retry"):
		w.outcomes = append(w.outcomes, refused)
		return
	default:
		w.outcomes = append(w.outcomes, unknown)
		w.errs = append(w.errs, fmt.Sprintf("Set %d: %v", seq, err))
		return
	}
	vals, err := php.MGet(t.Context(), "app", w.counter())
	if err != nil {
		if !strings.Contains(err.Error(), "outcome unknown") {
			w.errs = append(w.errs, fmt.Sprintf("MGet after Set %d: %v", seq, err))
		}
		return
	}
	if got := string(vals[w.counter()]); got != string(v) {
		w.errs = append(w.errs, fmt.Sprintf("read %s = %q right after writing %q", w.counter(), got, v))
	}
}

// testKill writes through RoadRunner from several clients, SIGKILLs the
// node the plugin talks to (the leader) in the middle, and checks that the
// writes go on through the others and that no acknowledged write is lost
// or applied twice.
func testKill(t *testing.T, cl *kvCluster, rr *rrServer, php *client.Client, leader *kvNode) {
	if v := rr.metric(t, "rr_kvnode_active_node", "addr", leader.rpc); v != 1 {
		t.Fatalf("the plugin does not talk to %s (active_node = %v)", leader.rpc, v)
	}
	const (
		workers      = 4
		before       = 15 // acks each writer has before the kill
		after        = 15 // and after it
		maxSteps     = 500
		phaseTimeout = 30 * time.Second
	)
	ws := make([]*writer, workers)
	for i := range ws {
		ws[i] = &writer{id: i}
	}
	// phase runs every writer until it has n more acks.
	phase := func(n int) {
		var wg sync.WaitGroup
		deadline := time.Now().Add(phaseTimeout)
		for _, w := range ws {
			wg.Go(func() {
				goal := w.acks() + n
				for w.acks() < goal && len(w.outcomes) < maxSteps && time.Now().Before(deadline) {
					w.step(t, php)
				}
			})
		}
		wg.Wait()
	}
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		// Kill while the writers are busy: once each has some acks.
		deadline := time.Now().Add(phaseTimeout)
		for time.Now().Before(deadline) {
			done := 0
			for _, w := range ws {
				if w.acks() >= before/2 {
					done++
				}
			}
			if done == workers {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		leader.proc.kill()
	}()
	phase(before)
	<-killed
	phase(after)

	var lost, unknowns, refusals int
	for _, w := range ws {
		for _, e := range w.errs {
			t.Error(e)
		}
		if w.acks() < before+after {
			t.Errorf("writer %d: %d acks, want %d: writes did not go on after the kill (outcomes %v)", w.id, w.acks(), before+after, w.outcomes)
		}
		for _, o := range w.outcomes {
			switch o {
			case unknown:
				unknowns++
			case refused:
				refusals++
			}
		}
	}
	t.Logf("%d writers: %d writes with an unknown outcome (in flight at the kill), %d refused without a leader", workers, unknowns, refusals)

	// Every acknowledged write is on every surviving node; a refused one is
	// nowhere; each counter holds the last acknowledged write or a later
	// unknown one, never an older one (which a write sent twice would leave).
	for _, n := range cl.nodes {
		if n == leader {
			continue
		}
		c := dial(t, n.rpc, client.WithPoolSize(1))
		for _, w := range ws {
			keys := []string{w.counter()}
			for seq := range w.outcomes {
				keys = append(keys, w.key(seq))
			}
			vals, err := c.MGet(t.Context(), "strict", keys...)
			if err != nil {
				t.Fatalf("node %s: linearizable MGet: %v", n.id, err)
			}
			last := -1
			for seq, o := range w.outcomes {
				v, ok := vals[w.key(seq)]
				switch {
				case o == acked && (!ok || string(v) != strconv.Itoa(seq)):
					lost++
					t.Errorf("node %s: acknowledged write %s = %q (present %v)", n.id, w.key(seq), v, ok)
				case o == refused && ok:
					t.Errorf("node %s: write %s refused with 'no leader' was applied", n.id, w.key(seq))
				}
				if o == acked {
					last = seq
				}
			}
			got, err := strconv.Atoi(string(vals[w.counter()]))
			if err != nil || got < last {
				t.Errorf("node %s: %s = %q, older than the last acknowledged write %d", n.id, w.counter(), vals[w.counter()], last)
			}
			for seq := last + 1; seq < got; seq++ {
				if w.outcomes[seq] != unknown {
					t.Errorf("node %s: %s = %d, but write %d was %v", n.id, w.counter(), got, seq, w.outcomes[seq])
				}
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged writes lost", lost)
	}
	if v := rr.metric(t, "rr_kvnode_failovers_total", "storage", "strict"); v < 1 {
		t.Errorf("rr_kvnode_failovers_total{storage=strict} = %v after the kill, want at least 1", v)
	}
	if v := rr.metric(t, "rr_kvnode_active_node", "addr", leader.rpc); v != 0 {
		t.Errorf("rr_kvnode_active_node{addr=%s} = %v after it was killed, want 0", leader.rpc, v)
	}
}

// testNoLeader kills a second node, leaving one that knows no leader: a
// write then fails within the plugin's timeout with the cluster's "no
// leader ... retry", which PHP can trust to mean nothing was written, after
// the plugin tried every node in turn until its timeout.
func testNoLeader(t *testing.T, cl *kvCluster, rr *rrServer, php *client.Client) {
	var alive []*kvNode
	for _, n := range cl.nodes {
		if !n.proc.exited() {
			alive = append(alive, n)
		}
	}
	if len(alive) != 2 {
		t.Fatalf("%d nodes alive, want 2 (after the kill test)", len(alive))
	}
	// Kill the node the plugin does not talk to: the one it talks to is
	// then alone, and answers that it knows no leader.
	last, other := alive[0], alive[1]
	if rr.metric(t, "rr_kvnode_active_node", "addr", last.rpc) != 1 {
		last, other = other, last
	}
	other.proc.kill()
	// Once it has noticed: a write it forwarded to the dead leader would be
	// (rightly) an unknown outcome, not the refusal this test is about.
	eventually(t, 10*time.Second, func() string {
		if id := cl.leaderOf(t, last); id != "" {
			return last.id + " still follows " + id
		}
		return ""
	})

	began := time.Now()
	err := php.Set(t.Context(), "sessions", client.Item{Key: "orphan", Value: []byte("x")})
	took := time.Since(began)
	if err == nil || !strings.Contains(err.Error(), "no leader: write not applied, retry") {
		t.Fatalf("Set with one node of three left: %v, want the cluster's no-leader refusal", err)
	}
	var se *client.ServerError
	if !errors.As(err, &se) || !strings.HasPrefix(se.Text, "rpc_set:\n\tkvnode_driver_set: node "+last.rpc+": rpc_set: no leader") {
		t.Errorf("no-leader text: %q", serverText(err))
	}
	if took > 15*time.Second {
		t.Errorf("the refusal took %s; the plugin's timeout is 5s", took)
	}
	// Nothing was written: the surviving node's own state has no such key.
	if vals, err := dial(t, last.rpc, client.WithPoolSize(1)).MGet(t.Context(), "sessions", "orphan"); err != nil || len(vals) != 0 {
		t.Errorf("node %s after a refused write: %q, %v", last.id, vals, err)
	}
	if v := rr.metric(t, "rr_kvnode_errors_total", "storage", "sessions", "method", "set", "kind", "no_leader"); v < 1 {
		t.Errorf("rr_kvnode_errors_total{kind=no_leader} = %v, want at least 1", v)
	}
}
