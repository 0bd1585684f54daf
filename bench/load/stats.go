package load

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"
)

// latencyHist is a log-linear histogram of durations in nanoseconds, in the
// manner of HdrHistogram: values below 128 ns are exact, and above that each
// power of two is split into 64 equal buckets, so a recorded value is off by
// less than 1/64 (1.6 %) of itself. Recording is an index computation and an
// increment: no allocation, no lock (each worker owns its histograms and
// they are merged at the end).
type latencyHist struct {
	counts   [histBuckets]uint64
	total    uint64
	sum      uint64
	min, max uint64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // 128 exact values, then 64 per octave
	histHalf    = histSub / 2
	histBuckets = (64-histSubBits)*histHalf + histSub
)

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits
	return shift*histHalf + int(v>>shift)
}

// histUpper is the largest value that lands in bucket i.
func histUpper(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := i/histHalf - 1
	sub := uint64(i - shift*histHalf)
	return (sub+1)<<shift - 1
}

func (h *latencyHist) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[histIndex(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.total++
	h.sum += v
}

func (h *latencyHist) merge(o *latencyHist) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.total += o.total
	h.sum += o.sum
}

// quantile returns the value at or below which a fraction q of the
// recorded values lie (the bucket's upper bound, never above the maximum).
func (h *latencyHist) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histUpper(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// LatencySummary is what a histogram is reported as, in microseconds.
type LatencySummary struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

func micros(d time.Duration) float64 { return math.Round(float64(d)/1e1) / 1e2 }

func (h *latencyHist) summary() LatencySummary {
	if h.total == 0 {
		return LatencySummary{}
	}
	return LatencySummary{
		Min:  micros(time.Duration(h.min)),
		Mean: micros(time.Duration(h.sum / h.total)),
		P50:  micros(h.quantile(0.50)),
		P90:  micros(h.quantile(0.90)),
		P99:  micros(h.quantile(0.99)),
		P999: micros(h.quantile(0.999)),
		Max:  micros(time.Duration(h.max)),
	}
}

// opStats counts one kind of request (set, mget or has) of one worker.
type opStats struct {
	hist     latencyHist // successful requests only
	requests int64       // completed, errors included
	errors   int64
	keys     int64 // keys sent in completed requests
	hits     int64 // keys found, for mget and has
}

func (s *opStats) merge(o *opStats) {
	s.hist.merge(&o.hist)
	s.requests += o.requests
	s.errors += o.errors
	s.keys += o.keys
	s.hits += o.hits
}

// OpResult is the report for one kind of request; Hits is set for reads.
type OpResult struct {
	Requests      int64          `json:"requests"`
	Errors        int64          `json:"errors"`
	Keys          int64          `json:"keys"`
	Hits          *int64         `json:"hits,omitempty"`
	RequestsPerS  float64        `json:"requests_per_s"`
	KeysPerS      float64        `json:"keys_per_s"`
	LatencyMicros LatencySummary `json:"latency_us"`
}

func newBenchOpResult(s *opStats, read bool, elapsed time.Duration) OpResult {
	r := OpResult{
		Requests:      s.requests,
		Errors:        s.errors,
		Keys:          s.keys,
		LatencyMicros: s.hist.summary(),
	}
	if read {
		hits := s.hits
		r.Hits = &hits
	}
	if secs := elapsed.Seconds(); secs > 0 {
		r.RequestsPerS = math.Round(float64(s.requests)/secs*10) / 10
		r.KeysPerS = math.Round(float64(s.keys)/secs*10) / 10
	}
	return r
}

// Result is the whole report; kvnode bench --json prints it as is.
type Result struct {
	Op          string              `json:"op"`
	RPC         string              `json:"rpc"`
	Storage     string              `json:"storage"`
	Connections int                 `json:"connections"`
	KeysPerReq  int                 `json:"keys_per_request"`
	ValueSize   int                 `json:"value_size"`
	Keyspace    int                 `json:"keyspace"`
	TTLSeconds  float64             `json:"ttl_s,omitempty"`
	Preloaded   int                 `json:"preloaded_keys"`
	ElapsedS    float64             `json:"elapsed_s"`
	Interrupted bool                `json:"interrupted"`
	FirstError  string              `json:"first_error,omitempty"`
	Total       OpResult            `json:"total"`
	Ops         map[string]OpResult `json:"ops"`
}

func fmtMicros(us float64) string {
	switch {
	case us >= 1e6:
		return strconv.FormatFloat(us/1e6, 'f', 2, 64) + "s"
	case us >= 1e3:
		return strconv.FormatFloat(us/1e3, 'f', 2, 64) + "ms"
	default:
		return strconv.FormatFloat(us, 'f', 0, 64) + "µs"
	}
}

func writeOpLine(b *strings.Builder, name string, r OpResult) {
	fmt.Fprintf(b, "  %-6s %d requests (%.0f req/s, %.0f keys/s), %d errors", name, r.Requests, r.RequestsPerS, r.KeysPerS, r.Errors)
	if r.Hits != nil && r.Keys > 0 {
		fmt.Fprintf(b, ", %.1f%% hits", 100*float64(*r.Hits)/float64(r.Keys))
	}
	l := r.LatencyMicros
	fmt.Fprintf(b, "\n         latency min %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s\n",
		fmtMicros(l.Min), fmtMicros(l.P50), fmtMicros(l.P90), fmtMicros(l.P99), fmtMicros(l.P999), fmtMicros(l.Max), fmtMicros(l.Mean))
}

// WriteText prints the report for people, in the spirit of redis-benchmark.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "kvnode bench %s: %s storage %q, %d connections, %d key(s)/request, %d-byte values, keyspace %d",
		r.Op, r.RPC, r.Storage, r.Connections, r.KeysPerReq, r.ValueSize, r.Keyspace)
	if r.TTLSeconds > 0 {
		fmt.Fprintf(&b, ", ttl %gs", r.TTLSeconds)
	}
	b.WriteString("\n")
	if r.Preloaded > 0 {
		fmt.Fprintf(&b, "  preloaded %d keys\n", r.Preloaded)
	}
	status := ""
	if r.Interrupted {
		status = " (interrupted: partial result)"
	}
	fmt.Fprintf(&b, "  ran %.2fs%s\n", r.ElapsedS, status)
	if len(r.Ops) > 1 {
		for _, name := range []string{"mget", "set", "has"} {
			if o, ok := r.Ops[name]; ok {
				writeOpLine(&b, name, o)
			}
		}
	}
	writeOpLine(&b, "total", r.Total)
	if r.FirstError != "" {
		fmt.Fprintf(&b, "  first error: %s\n", r.FirstError)
	}
	_, err := io.WriteString(w, b.String())
	return err //nolint:wrapcheck // a failed write to stdout speaks for itself
}

// progress prints a line a second to Config.Progress until the returned
// function is called: overwritten in place on a terminal, one per second
// otherwise.
func (b *benchRun) progress(ctx context.Context, workers []*benchWorker) (stop func()) {
	stderr := b.cfg.Progress
	if stderr == nil {
		return func() {}
	}
	tty := b.cfg.Overwrite
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var last int64
		lastAt := b.warmupEnd
		for {
			select {
			case <-done:
			case <-ctx.Done():
			case now := <-tick.C:
				var n, errs int64
				for _, w := range workers {
					n += w.completed.Load()
					errs += w.failed.Load()
				}
				line := fmt.Sprintf("bench %s: warming up", b.cfg.Op)
				// The rate is over the time since the last line, so the
				// first line after the warm-up is not diluted by it.
				if since := now.Sub(lastAt); since >= 100*time.Millisecond {
					line = fmt.Sprintf("bench %s: %5.0fs %9.0f req/s  total %d  errors %d",
						b.cfg.Op, now.Sub(b.warmupEnd).Seconds(), float64(n-last)/since.Seconds(), n, errs)
					last, lastAt = n, now
				}
				if tty {
					line = "\r" + line + "\x1b[K"
				} else {
					line += "\n"
				}
				_, _ = io.WriteString(stderr, line)
				continue
			}
			if tty {
				_, _ = io.WriteString(stderr, "\r\x1b[K")
			}
			return
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
