package cluster

import "time"

// join contacts the seeds. It gives up waiting when stop closes (a seed
// that does not answer holds Join for memberlist's TCP timeout), leaving
// Join to fail on its own once memberlist shuts down.
func (g *gossip) join(stop <-chan struct{}) (int, error, bool) {
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := g.ml.Join(g.seeds)
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		return r.n, r.err, true
	case <-stop:
		return 0, nil, false
	}
}

// joinBackoff bounds the seed retry delays.
const (
	joinBackoffMin = 500 * time.Millisecond
	joinBackoffMax = 30 * time.Second
	// joinRecheck is how often a joined node checks it is still not alone.
	joinRecheck = 5 * time.Second
)

// joinLoop contacts the seeds until another member is alive, and again
// whenever this node finds itself alone (a partition outlived memberlist's
// memory of the others), with capped exponential backoff.
func (n *Node) joinLoop() {
	defer n.bg.Done()
	g := n.gossip
	if len(g.seeds) == 0 {
		return
	}
	backoff, attempt := joinBackoffMin, 0
	for {
		wait := joinRecheck
		if g.alone() {
			attempt++
			contacted, err, ok := g.join(n.stop)
			if !ok {
				return
			}
			switch {
			case !g.alone():
				n.logger.Info("joined gossip", "seeds", g.seeds, "contacted", contacted, "members", g.ml.NumMembers())
				backoff, attempt = joinBackoffMin, 0
			default:
				if err == nil {
					err = errNoSeedAnswered
				}
				// Every attempt at first, then at powers of two, so a
				// long outage stays visible without flooding the log.
				if attempt&(attempt-1) == 0 {
					n.logger.Warn("gossip join failed, retrying", "seeds", g.seeds, "attempt", attempt, "retry_in", backoff, "err", err)
				}
				wait = backoff
				backoff = min(2*backoff, joinBackoffMax)
			}
		}
		select {
		case <-n.stop:
			return
		case <-time.After(wait):
		}
	}
}
