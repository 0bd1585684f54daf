package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/kvnode/kvnode/client"
)

// WorkloadOptions shapes the client load.
type WorkloadOptions struct {
	Workers int
	// OpTimeout bounds each call; a write that times out is possibly applied.
	OpTimeout time.Duration
	// Pause is each worker's think time between operations.
	Pause time.Duration
	// KeyEpoch rotates the register and group keys, so that each key's
	// history (and porcupine's search over it) stays small.
	KeyEpoch time.Duration
	// MaxOps bounds the operations of the whole run.
	MaxOps int
	// TTLMin and TTLMax bound the lifetime of TTL keys.
	TTLMin, TTLMax time.Duration
	// Kinds are the workloads to run (AllWorkloads when empty).
	Kinds []string
}

func (o *WorkloadOptions) defaults() {
	if o.Workers <= 0 {
		o.Workers = 6
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 2 * time.Second
	}
	if o.Pause <= 0 {
		o.Pause = 20 * time.Millisecond
	}
	if o.KeyEpoch <= 0 {
		o.KeyEpoch = 15 * time.Second
	}
	if o.MaxOps <= 0 {
		o.MaxOps = 2_000_000
	}
	if o.TTLMin <= 0 {
		o.TTLMin = 300 * time.Millisecond
	}
	if o.TTLMax <= o.TTLMin {
		o.TTLMax = o.TTLMin + 2*time.Second
	}
	if len(o.Kinds) == 0 {
		o.Kinds = AllWorkloads
	}
}

// workloadWeight is each workload's share of the operations.
var workloadWeight = map[string]int{WorkloadRegister: 40, WorkloadGroup: 20, WorkloadTTL: 20, WorkloadEvict: 20}

// fillSize is the evict workload's filler value. At about 17 filler sets a
// second the bounded storage's 128KiB are full within seconds, then every
// filler set needs an eviction, and with some 30 filler keys in the storage
// the random victims are the checked keys often enough that reads find
// them gone after an acknowledged set (about one read a second).
const fillSize = 4096

// runClock turns wall time into run time: monotonic nanoseconds since start.
type runClock struct{ start time.Time }

func (c runClock) now() int64                 { return int64(time.Since(c.start)) }
func (c runClock) fromWall(t time.Time) int64 { return int64(t.Sub(c.start)) }

// clients holds one pooled client per node, dialled lazily.
type clients struct {
	c    Cluster
	mu   sync.Mutex
	pool map[string]*client.Client
}

func (cs *clients) get(ctx context.Context, node string) (*client.Client, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cl := cs.pool[node]; cl != nil {
		return cl, nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, cs.c.Addr(node), client.WithPoolSize(2))
	if err != nil {
		return nil, err // classified by the caller
	}
	cs.pool[node] = cl
	return cl, nil
}

func (cs *clients) close() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, cl := range cs.pool {
		_ = cl.Close()
	}
}

// ttlRing remembers recent TTL keys for readers.
type ttlRing struct {
	mu   sync.Mutex
	keys [][2]string // storage, key
	next int
}

func (r *ttlRing) add(storage, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.keys) < 64 {
		r.keys = append(r.keys, [2]string{storage, key})
		return
	}
	r.keys[r.next] = [2]string{storage, key}
	r.next = (r.next + 1) % len(r.keys)
}

func (r *ttlRing) pick(rng *rand.Rand) (string, string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.keys) == 0 {
		return "", "", false
	}
	k := r.keys[rng.IntN(len(r.keys))]
	return k[0], k[1], true
}

// worker issues operations until ctx ends or the op budget runs out.
type worker struct {
	id    int
	opts  WorkloadOptions
	clock runClock
	hist  *History
	cl    *clients
	nodes []string
	ttl   *ttlRing
	rng   *rand.Rand
	seq   int
	// budget is shared by all workers.
	budget *opBudget
}

type opBudget struct {
	mu   sync.Mutex
	left int
}

func (b *opBudget) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left <= 0 {
		return false
	}
	b.left--
	return true
}

func (w *worker) run(ctx context.Context) {
	for ctx.Err() == nil && w.budget.take() {
		w.step(ctx)
		if !sleepCtx(ctx, w.opts.Pause) {
			return
		}
	}
}

func (w *worker) value() string {
	w.seq++
	return fmt.Sprintf("w%d-%d", w.id, w.seq)
}

// pick chooses a workload among those enabled, by weight.
func (w *worker) pick() string {
	total := 0
	for _, k := range w.opts.Kinds {
		total += workloadWeight[k]
	}
	r := w.rng.IntN(max(total, 1))
	for _, k := range w.opts.Kinds {
		if r -= workloadWeight[k]; r < 0 {
			return k
		}
	}
	return WorkloadRegister
}

func (w *worker) step(ctx context.Context) {
	kind := w.pick()
	storage := Storages[w.rng.IntN(len(Storages))]
	node := w.nodes[w.rng.IntN(len(w.nodes))]
	epoch := w.clock.now() / int64(w.opts.KeyEpoch)
	r := w.rng.IntN(100)
	switch kind {
	case WorkloadRegister: // per-key register
		key := fmt.Sprintf("r%d-%d", epoch, w.rng.IntN(4))
		switch {
		case r < 45:
			w.set(ctx, node, storage, kind, []string{key}, w.value(), 0)
		case r < 90:
			w.read(ctx, node, storage, kind, []string{key})
		default:
			w.del(ctx, node, storage, kind, []string{key})
		}
	case WorkloadGroup: // multi-key atomic group
		base := fmt.Sprintf("g%d-%d", epoch, w.rng.IntN(2))
		keys := []string{base + "/a", base + "/b", base + "/c"}
		switch {
		case r < 45:
			w.set(ctx, node, storage, kind, keys, w.value(), 0)
		case r < 90:
			w.read(ctx, node, storage, kind, keys)
		default:
			w.del(ctx, node, storage, kind, keys)
		}
	case WorkloadTTL: // each key written once, read until and after its deadline
		if st, key, ok := w.ttl.pick(w.rng); ok && r < 60 {
			w.read(ctx, node, st, kind, []string{key})
			return
		}
		key := fmt.Sprintf("t%d-%d", w.id, w.seq)
		life := w.opts.TTLMin + time.Duration(w.rng.Int64N(int64(w.opts.TTLMax-w.opts.TTLMin)))
		w.set(ctx, node, storage, kind, []string{key}, w.value(), life)
		w.ttl.add(storage, key)
	case WorkloadEvict: // registers on the bounded storage, which filler keeps full
		key := fmt.Sprintf("e%d-%d", epoch, w.rng.IntN(4))
		switch {
		case r < 35:
			w.fill(ctx, node)
		case r < 62:
			w.set(ctx, node, BoundedStorage, kind, []string{key}, w.value(), 0)
		case r < 94:
			w.read(ctx, node, BoundedStorage, kind, []string{key})
		default:
			w.del(ctx, node, BoundedStorage, kind, []string{key})
		}
	}
}

// fill writes a new key with a fillSize value to the bounded storage, so
// that it stays full and the leader evicts. Filler keys are never read:
// the history keeps the value's unique prefix only.
func (w *worker) fill(ctx context.Context, node string) {
	id := w.value()
	key := "f" + id
	op := Op{Node: node, Storage: BoundedStorage, Workload: WorkloadFill, F: "set", Keys: []string{key}, Value: id}
	value := []byte(id + strings.Repeat(".", max(fillSize-len(id), 0)))
	w.hist.Add(w.call(ctx, op, true, func(ctx context.Context, cl *client.Client) error {
		return cl.Set(ctx, BoundedStorage, client.Item{Key: key, Value: value})
	}))
}

func (w *worker) call(ctx context.Context, op Op, write bool, do func(context.Context, *client.Client) error) Op {
	ctx, cancel := context.WithTimeout(ctx, w.opts.OpTimeout)
	defer cancel()
	op.Worker = w.id
	op.Invoke = w.clock.now()
	cl, err := w.cl.get(ctx, op.Node)
	if err == nil {
		err = do(ctx, cl)
	}
	op.Complete = w.clock.now()
	op.Status, op.ErrKind = Classify(err, write)
	if err != nil {
		op.Err = err.Error()
	}
	return op
}

func (w *worker) set(ctx context.Context, node, storage, workload string, keys []string, value string, life time.Duration) {
	op := Op{Node: node, Storage: storage, Workload: workload, F: "set", Keys: keys, Value: value}
	items := make([]client.Item, len(keys))
	var deadline time.Time
	if life > 0 {
		deadline = time.Now().Add(life)
		op.Deadline = w.clock.fromWall(deadline)
	}
	for i, k := range keys {
		items[i] = client.Item{Key: k, Value: []byte(value)}
		if life > 0 {
			items[i] = items[i].WithExpiry(deadline)
		}
	}
	w.hist.Add(w.call(ctx, op, true, func(ctx context.Context, cl *client.Client) error {
		return cl.Set(ctx, storage, items...)
	}))
}

func (w *worker) del(ctx context.Context, node, storage, workload string, keys []string) {
	op := Op{Node: node, Storage: storage, Workload: workload, F: "del", Keys: keys}
	w.hist.Add(w.call(ctx, op, true, func(ctx context.Context, cl *client.Client) error {
		return cl.Delete(ctx, storage, keys...)
	}))
}

func (w *worker) read(ctx context.Context, node, storage, workload string, keys []string) {
	op := Op{Node: node, Storage: storage, Workload: workload, F: "get", Keys: keys}
	var got map[string][]byte
	op = w.call(ctx, op, false, func(ctx context.Context, cl *client.Client) error {
		var err error
		got, err = cl.MGet(ctx, storage, keys...)
		return err
	})
	if op.Status == StatusOK {
		op.Read = make(map[string]string, len(got))
		for k, v := range got {
			op.Read[k] = string(v)
		}
	}
	w.hist.Add(op)
}
