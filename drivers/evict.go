package drivers

import (
	"cmp"
	"slices"
	"sync"
)

// Planner decides evictions for one bounded storage, where writes are
// proposed: in drivers.Standalone's committer, or on a cluster's leader. Given
// the writes about to be proposed, Plan returns the OpEvict to put before
// them (in the same Engine.Apply batch, or the same log entry) so that they
// fit. The engine enforces the limits at apply on its own; the planner only
// sees to it that writes normally do not fail.
//
// A planner that proposes writes before earlier ones are applied (a
// leader's pipeline) counts what is in flight. Each Plan returns a Ticket
// holding the growth it let through and the victims it chose, which stay
// reserved (and are never chosen twice) until Done. The room an eviction
// frees is credited until the engine shows it applied: evictions are
// numbered (Op.Seq) in the order they are proposed, which must be their
// order in the log, and the engine remembers the last one it applied, so
// the planner never counts that room twice, whatever the delay between an
// entry being applied and its Done.
//
// Victims are chosen as Redis does: lru samples Samples random keys per
// victim into a pool of the oldest candidates seen and evicts the oldest of
// the pool; random takes sampled keys as they come; ttl takes the nearest
// deadlines. Plan evicts only when it finds enough room: a write that
// cannot fit anyway (larger than the limit, or ttl with too few keys that
// have a TTL) evicts nothing and then fails at apply, like reject.
type Planner struct {
	e       Evictable
	samples int

	mu sync.Mutex
	// pool holds lru candidates, oldest first.
	pool []Candidate
	// pending are victims in flight; pendKeys and pendUsage the growth let
	// through and not yet released.
	pending             map[string]struct{}
	pendKeys, pendUsage int64
	// evicts are the evictions proposed and not yet seen applied, by Seq;
	// freedKeys and freedUsage their sums.
	evicts                []inflight
	freedKeys, freedUsage int64
	// epoch and next number the evictions (SetEpoch).
	epoch, next uint64
	scratch     []Candidate
}

// inflight is an eviction proposed and not yet seen applied.
type inflight struct {
	seq         uint64
	keys, usage int64
}

// Planner tuning.
const (
	// DefaultSamples is Redis's maxmemory-samples.
	DefaultSamples = 5
	// poolSize is Redis's eviction pool size.
	poolSize = 16
	// maxVictims bounds one Plan; a write needing more room than that many
	// keys free is left to fail (or to the next Plan).
	maxVictims = 4096
	// maxSampleRounds bounds the sampling one Plan may do per victim it
	// still needs before it gives up (keys all chosen already, say).
	maxSampleRounds = 8
	// slackMin and slackMax bound the slack (see slack), in keys.
	slackMin = 8
	slackMax = 256
)

// NewPlanner returns a planner for e; samples <= 0 means DefaultSamples.
func NewPlanner(e Evictable, samples int) *Planner {
	if samples <= 0 {
		samples = DefaultSamples
	}
	return &Planner{e: e, samples: samples, pending: map[string]struct{}{}, next: 1}
}

// SetEpoch starts numbering evictions afresh above every number an
// earlier epoch used: a leader passes its term, so that numbers grow along
// the log across leaders. Evictions of an earlier epoch are forgotten.
func (p *Planner) SetEpoch(epoch uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if epoch == p.epoch {
		return
	}
	p.epoch, p.next = epoch, epoch<<32|1
	p.evicts, p.freedKeys, p.freedUsage = nil, 0, 0
}

// Ticket is what one Plan reserved, released by Done.
type Ticket struct {
	keys, usage int64
	victims     []string
	// seq is the ticket's eviction, 0 for none.
	seq uint64
}

// Plan returns the eviction that makes room for ops, to be applied before
// them at now, or nil when they fit (or cannot be made to fit), and the
// ticket to pass to Done once they are applied or failed.
func (p *Planner) Plan(ops []Op, now int64) (*Op, Ticket) {
	if !p.e.Stats().Limits.Bounded() {
		return nil, Ticket{}
	}
	var t Ticket
	for i := range ops {
		k, u := p.e.Growth(&ops[i])
		t.keys += max(k, 0)
		t.usage += max(u, 0)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	keys, usage, lim := p.projected()
	needKeys, needBytes := int64(0), int64(0)
	if lim.MaxKeys > 0 {
		needKeys = keys + t.keys - lim.MaxKeys
	}
	if lim.MaxBytes > 0 {
		needBytes = usage + t.usage - lim.MaxBytes
	}
	p.pendKeys += t.keys
	p.pendUsage += t.usage
	if needKeys <= 0 && needBytes <= 0 || lim.Policy == PolicyReject {
		return nil, t
	}
	reason := ReasonMemory
	if needKeys > 0 {
		reason = ReasonKeys
	}
	slackKeys, slackBytes := slack(lim, keys, usage)
	vs, fk, fu := p.choose(lim.Policy, needKeys, needBytes, slackKeys, slackBytes, now)
	if vs == nil {
		return nil, t
	}
	return p.evict(&t, reason, vs, fk, fu, now), t
}

// slack is the room an eviction makes beyond what the writes need, so that
// the next writes find it and do not each need an eviction of their own (a
// raft entry of their own, until evictions share the writes' entries):
// 1/512 of the limit, when that is at least slackMin keys' worth (a small
// storage evicts exactly what it must), and at most slackMax keys' worth.
func slack(lim Limits, keys, usage int64) (slackKeys, slackBytes int64) {
	if lim.MaxKeys/512 >= slackMin {
		slackKeys = min(lim.MaxKeys/512, slackMax)
	}
	if keys > 0 && lim.MaxBytes > 0 {
		avg := max(usage/keys, 1)
		if lim.MaxBytes/512 >= slackMin*avg {
			slackBytes = min(lim.MaxBytes/512, slackMax*avg)
		}
	}
	return slackKeys, slackBytes
}

// projected returns the keys and usage the engine will hold once what is
// in flight is applied, and its limits. Callers hold mu: an entry whose
// ticket was released before is in the engine's counts, one released later
// is still in pend.
func (p *Planner) projected() (keys, usage int64, lim Limits) {
	acc := p.e.Accounting()
	for len(p.evicts) > 0 && p.evicts[0].seq <= acc.LastEvict {
		p.forget(0)
	}
	return acc.Keys + p.pendKeys - p.freedKeys, acc.Usage + p.pendUsage - p.freedUsage, acc.Limits
}

// forget drops evicts[i] from the room in flight.
func (p *Planner) forget(i int) {
	p.freedKeys -= p.evicts[i].keys
	p.freedUsage -= p.evicts[i].usage
	p.evicts = slices.Delete(p.evicts, i, i+1)
}

// evict numbers an eviction of vs, freeing fk keys and fu usage, records
// it in flight and in t, and returns its op. Callers hold mu.
func (p *Planner) evict(t *Ticket, reason Reason, vs []Victim, fk, fu, now int64) *Op {
	t.seq = p.next
	p.next++
	p.evicts = append(p.evicts, inflight{seq: t.seq, keys: fk, usage: fu})
	p.freedKeys += fk
	p.freedUsage += fu
	t.victims = make([]string, len(vs))
	for i, v := range vs {
		t.victims[i] = v.Key
		p.pending[v.Key] = struct{}{}
	}
	return &Op{Kind: OpEvict, Now: now, Reason: reason, Seq: t.seq, Victims: vs}
}

// Shrink returns an eviction of up to limit keys towards target, for a
// limit being lowered below what the storage holds, or nil when nothing
// (more) can be evicted under target's policy.
func (p *Planner) Shrink(target Limits, now int64, limit int) (*Op, Ticket) {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys, usage, _ := p.projected()
	needKeys, needBytes := int64(0), int64(0)
	if target.MaxKeys > 0 {
		needKeys = keys - target.MaxKeys
	}
	if target.MaxBytes > 0 {
		needBytes = usage - target.MaxBytes
	}
	if needKeys <= 0 && needBytes <= 0 || target.Policy == PolicyReject {
		return nil, Ticket{}
	}
	vs, fk, fu := p.chooseUpTo(target.Policy, needKeys, needBytes, now, limit)
	if len(vs) == 0 {
		return nil, Ticket{}
	}
	var t Ticket
	return p.evict(&t, ReasonLimit, vs, fk, fu, now), t
}

// Done releases what t reserved: its entry is applied (or failed), so
// the engine's own counts now tell.
func (p *Planner) Done(t Ticket) {
	if t.keys == 0 && t.usage == 0 && t.seq == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pendKeys -= t.keys
	p.pendUsage -= t.usage
	for _, k := range t.victims {
		delete(p.pending, k)
	}
	// Applied, or never will be (leadership lost): no longer in flight.
	if i := slices.IndexFunc(p.evicts, func(x inflight) bool { return x.seq == t.seq }); t.seq != 0 && i >= 0 {
		p.forget(i)
	}
}

// choose picks victims freeing needKeys keys and needBytes of usage, and
// the slack beyond them when it finds it, or none when it cannot find the
// need. Callers hold mu.
func (p *Planner) choose(policy Policy, needKeys, needBytes, slackKeys, slackBytes, now int64) ([]Victim, int64, int64) {
	vs, keys, usage := p.chooseUpTo(policy, max(needKeys, 0)+slackKeys, max(needBytes, 0)+slackBytes, now, maxVictims)
	if keys < needKeys || usage < needBytes {
		// Not enough: evicting some would lose keys for a write that
		// fails anyway. Put lru candidates back for the next Plan.
		return nil, 0, 0
	}
	return vs, keys, usage
}

// chooseUpTo picks up to limit victims towards the need, as many as it
// finds. Callers hold mu.
func (p *Planner) chooseUpTo(policy Policy, needKeys, needBytes, now int64, limit int) ([]Victim, int64, int64) {
	var vs []Victim
	var keys, usage int64
	var chosen map[string]struct{} // once vs is long
	taken := func(k string) bool {
		if _, ok := p.pending[k]; ok {
			return true
		}
		if chosen != nil {
			_, ok := chosen[k]
			return ok
		}
		return slices.ContainsFunc(vs, func(v Victim) bool { return v.Key == k })
	}
	take := func(c Candidate) {
		vs = append(vs, c.Victim)
		keys++
		usage += c.Usage
		if chosen == nil && len(vs) > 32 {
			chosen = make(map[string]struct{}, 2*len(vs))
			for _, v := range vs {
				chosen[v.Key] = struct{}{}
			}
		} else if chosen != nil {
			chosen[c.Key] = struct{}{}
		}
	}
	enough := func() bool { return keys >= needKeys && usage >= needBytes || len(vs) >= limit }
	switch policy {
	case PolicyTTL:
		// Nearest deadlines in growing batches: most writes need one victim.
		for skip, n := 0, 4; !enough(); skip, n = skip+n, min(2*n, 256) {
			batch := p.e.Candidates(PolicyTTL, n, skip, 0, p.scratch[:0])
			p.scratch = batch
			if len(batch) == 0 {
				break
			}
			for _, c := range batch {
				if !taken(c.Key) && !enough() {
					take(c)
				}
			}
		}
	case PolicyRandom:
		for misses := 0; !enough() && misses < maxSampleRounds*p.samples; {
			batch := p.e.Candidates(PolicyRandom, 1, 0, 0, p.scratch[:0])
			p.scratch = batch
			switch {
			case len(batch) == 0:
				misses = maxSampleRounds * p.samples
			case taken(batch[0].Key):
				misses++
			default:
				take(batch[0])
			}
		}
	case PolicyLRU:
		for misses := 0; !enough() && misses < maxSampleRounds; {
			c, ok := p.oldest(now, taken)
			if !ok {
				misses++
				continue
			}
			take(c)
		}
	case PolicyReject:
	}
	return vs, keys, usage
}

// oldest samples keys into the lru pool and takes its oldest candidate that
// is still as it was sampled, with its digest, or reports false when
// sampling found none. Only samples older than the pool's youngest are
// read, once the pool is full. Callers hold mu.
func (p *Planner) oldest(now int64, taken func(string) bool) (Candidate, bool) {
	var before uint32
	if len(p.pool) >= poolSize {
		before = p.pool[len(p.pool)-1].Stamp
	}
	batch := p.e.Candidates(PolicyLRU, p.samples, 0, before, p.scratch[:0])
	p.scratch = batch
	for _, c := range batch {
		p.addToPool(c)
	}
	for len(p.pool) > 0 {
		c := p.popFront()
		cur, ok := p.e.Resolve(c)
		switch {
		case !ok:
			continue // written, deleted or moved since it was sampled
		case taken(cur.Key):
			continue
		case cur.Stamp != c.Stamp:
			// Used since: it competes again as it is now.
			p.addToPool(cur)
			continue
		}
		return cur, true
	}
	return Candidate{}, false
}

// addToPool inserts c by stamp, oldest first, keeping the pool at
// poolSize and each key once.
func (p *Planner) addToPool(c Candidate) {
	if i := slices.IndexFunc(p.pool, func(x Candidate) bool { return x.Ref == c.Ref }); i >= 0 {
		p.pool = slices.Delete(p.pool, i, i+1)
	}
	i, _ := slices.BinarySearchFunc(p.pool, c.Stamp, func(x Candidate, stamp uint32) int {
		return cmp.Compare(x.Stamp, stamp)
	})
	if i >= poolSize {
		return
	}
	p.pool = slices.Insert(p.pool, i, c)
	if len(p.pool) > poolSize {
		p.pool = p.pool[:poolSize]
	}
}

func (p *Planner) popFront() Candidate {
	c := p.pool[0]
	p.pool = p.pool[1:]
	return c
}
