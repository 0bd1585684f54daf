package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/kvnode/kvnode/client"
)

// StaleReadScenario forces the one situation in which a node without a
// confirmed read index serves a stale value, and records it as a history:
//
//  1. k = v1 is acknowledged on every linearizable storage, and node V has it;
//  2. V is cut off: isolated from the peer network where the cluster can do
//     that (V is then the leader, so this is leader isolation), otherwise
//     killed;
//  3. k = v2 is acknowledged through the majority;
//  4. V reads k. Where V was killed, the majority is paused first and V
//     restarted, so V hears from nobody.
//
// With safe reads step 4 fails (the read cannot be confirmed) and the
// history is linearizable; with cluster.unsafe.local_linearizable_reads V
// answers from its own state and the history is not. Every fault is healed
// before it returns.
func StaleReadScenario(ctx context.Context, c Cluster) ([]Op, error) {
	clock := runClock{start: time.Now()}
	hist := &History{}
	cl := &clients{c: c, pool: map[string]*client.Client{}}
	defer cl.close()
	w := &worker{opts: WorkloadOptions{OpTimeout: 2 * time.Second}, clock: clock, hist: hist, cl: cl}
	lin := []string{"memory_lin", "boltdb_lin"}
	const key = "stale"

	if err := WaitWritable(ctx, c, 60*time.Second); err != nil {
		return nil, err
	}
	isolate := true
	victim, err := WaitLeader(ctx, c, 20*time.Second)
	if err != nil {
		return nil, err
	}
	if err := c.Isolate(ctx, victim); isUnsupported(err) {
		isolate = false
	} else if err != nil {
		return nil, err
	} else if err := c.Rejoin(ctx, victim); err != nil {
		return nil, err
	}
	var others []string
	for _, n := range c.Nodes() {
		if n != victim {
			others = append(others, n)
		}
	}

	// 1. v1 everywhere; the victim must serve it before it is cut off.
	for _, st := range lin {
		if err := w.setUntilAcked(ctx, victim, st, key, "v1"); err != nil {
			return nil, err
		}
		if err := pollValue(ctx, cl, victim, st, key, "v1"); err != nil {
			return nil, err
		}
	}
	// 2. Cut the victim off.
	if isolate {
		err = c.Isolate(ctx, victim)
	} else {
		err = c.Kill(ctx, victim)
	}
	if err != nil {
		return nil, err
	}
	// 3. v2 through the majority.
	for _, st := range lin {
		if err := w.setUntilAcked(ctx, others[0], st, key, "v2"); err != nil {
			return nil, err
		}
	}
	// 4. The victim reads.
	if !isolate {
		for _, n := range others {
			if err := c.Pause(ctx, n); err != nil {
				return nil, err
			}
		}
		if err := c.Start(ctx, victim); err != nil {
			return nil, err
		}
	}
	for _, st := range lin {
		w.id++
		w.read(ctx, victim, st, "register", []string{key})
	}
	hctx := context.WithoutCancel(ctx)
	if isolate {
		err = c.Rejoin(hctx, victim)
	} else {
		for _, n := range others {
			if e := c.Resume(hctx, n); e != nil {
				err = e
			}
		}
	}
	return hist.Ops(), err
}

// setUntilAcked writes until one attempt is acknowledged (at most 30 s);
// every attempt is recorded, each as its own client.
func (w *worker) setUntilAcked(ctx context.Context, node, storage, key, value string) error {
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 100 && time.Now().Before(deadline); i++ {
		w.id++
		v := fmt.Sprintf("%s-%d", value, i)
		w.set(ctx, node, storage, "register", []string{key}, v, 0)
		ops := w.hist.Ops()
		if last := ops[len(ops)-1]; last.Status == StatusOK && last.Value == v {
			return nil
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	return fmt.Errorf("%w: %s=%s not acknowledged through %s within 30s", ErrNotReady, key, value, node)
}

// pollValue waits until node serves value (a prefix match on the attempt
// suffix) for key, at most 10 s.
func pollValue(ctx context.Context, cl *clients, node, storage, key, value string) error {
	var last string
	for i := 0; i < 50; i++ {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := cl.get(cctx, node)
		var got map[string][]byte
		if err == nil {
			got, err = c.MGet(cctx, storage, key)
		}
		cancel()
		if err == nil && len(got[key]) >= len(value) && string(got[key][:len(value)]) == value {
			return nil
		}
		last = fmt.Sprint(got, err)
		sleepCtx(ctx, 200*time.Millisecond)
	}
	return fmt.Errorf("%w: %s never served %s=%s: %s", ErrNotReady, node, key, value, last)
}
