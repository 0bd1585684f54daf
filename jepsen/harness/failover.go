package harness

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/kvnode/kvnode/client"
)

// FailoverSample is one leader kill.
type FailoverSample struct {
	Leader string
	// Unavailable is from the kill to the acknowledgement of the first
	// write sent after it.
	Unavailable time.Duration
}

// MeasureFailover kills the leader n times while writes to a linearizable
// storage start every 20 ms (each with a 1 s timeout, not waiting for the
// previous one, so a write stuck on the dead leader does not delay the
// next) through the surviving nodes in turn, and returns how long writes
// were unavailable each time.
func MeasureFailover(ctx context.Context, c Cluster, n int, logger *slog.Logger) ([]FailoverSample, error) {
	var out []FailoverSample
	for i := range n {
		if err := WaitWritable(ctx, c, 60*time.Second); err != nil {
			return out, err
		}
		leader, err := WaitLeader(ctx, c, 30*time.Second)
		if err != nil {
			return out, err
		}
		survivors := slices.DeleteFunc(slices.Clone(c.Nodes()), func(s string) bool { return s == leader })
		cls := make([]*client.Client, 0, len(survivors))
		for _, s := range survivors {
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			cl, err := client.Dial(dctx, c.Addr(s), client.WithPoolSize(4))
			cancel()
			if err != nil {
				return out, fmt.Errorf("dial %s: %w", s, err)
			}
			cls = append(cls, cl)
		}
		killed := time.Now()
		if err := c.Kill(ctx, leader); err != nil {
			return out, err
		}
		got := probeWrites(ctx, cls, i, killed)
		for _, cl := range cls {
			_ = cl.Close()
		}
		if got == 0 {
			return out, fmt.Errorf("%w: no write acknowledged within 30s of killing %s", ErrNotReady, leader)
		}
		logger.Info("failover", "kill", i+1, "leader", leader, "unavailable", got.Round(time.Millisecond))
		out = append(out, FailoverSample{Leader: leader, Unavailable: got})
		if err := c.Start(ctx, leader); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100).
func Percentile(samples []FailoverSample, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	d := make([]time.Duration, len(samples))
	for i, s := range samples {
		d[i] = s.Unavailable
	}
	slices.Sort(d)
	rank := int(p/100*float64(len(d))+0.999999) - 1
	return d[min(max(rank, 0), len(d)-1)]
}

// probeWrites starts a write every 20 ms (at most 1500, 30 s) and returns
// how long after start (the kill, so the docker command's own latency
// counts against kvnode) the first acknowledgement came; 0 if none did.
func probeWrites(ctx context.Context, cls []*client.Client, round int, start time.Time) time.Duration {
	var (
		mu    sync.Mutex
		first time.Duration
		wg    sync.WaitGroup
	)
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return first != 0
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for j := 0; j < 1500 && !done() && ctx.Err() == nil; j++ {
		cl := cls[j%len(cls)]
		wg.Go(func() {
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			if cl.Set(wctx, "boltdb_lin", client.Item{Key: "failover", Value: fmt.Appendf(nil, "%d-%d", round, j)}) == nil {
				mu.Lock()
				if first == 0 {
					first = time.Since(start)
				}
				mu.Unlock()
			}
		})
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	wg.Wait()
	return first
}
