// Command jepsen runs kvnode's fault-injection harness against a three-node
// cluster: docker compose when docker is available, local processes
// otherwise. See docs/jepsen.md.
//
//	go run ./cmd/jepsen -duration=150s -nemeses=kill,pause,partition,leader
//	go run ./cmd/jepsen -duration=30m -nemeses=all
//	go run ./cmd/jepsen -duration=3m -nemeses=all -workloads=evict
//	go run ./cmd/jepsen -failover=10
//
// It exits 1 when a check finds an anomaly and 2 when the run itself fails.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kvnode/kvnode/jepsen/harness"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		mode     = flag.String("mode", "auto", "cluster backend: docker, local or auto (docker when available)")
		image    = flag.String("image", "kvnode:local", "kvnode image for docker mode (make image)")
		compose  = flag.String("compose", "../docker-compose.cluster.yml", "compose file for docker mode")
		project  = flag.String("project", "", "compose project name (default: unique per run)")
		binary   = flag.String("kvnode", os.Getenv("KVNODE_BIN"), "kvnode binary for local mode (default: go build ../cmd/kvnode)")
		duration = flag.Duration("duration", 2*time.Minute, "workload duration")
		nemeses  = flag.String("nemeses", "kill,pause,partition,leader", "comma-separated: "+strings.Join(harness.AllNemeses, ",")+" or all")
		loads    = flag.String("workloads", "all", "comma-separated: "+strings.Join(harness.AllWorkloads, ",")+" or all (evict runs on the bounded storage "+harness.BoundedStorage+")")
		static   = flag.Bool("static-peers", false, "bootstrap from a static peer list instead of gossip's bootstrap_expect")
		out      = flag.String("out", "", "output directory (default: a new one under /tmp)")
		workers  = flag.Int("workers", 6, "concurrent clients")
		failover = flag.Int("failover", 0, "instead of a run, kill the leader this many times and report write unavailability")
		unsafe   = flag.Bool("unsafe-local-reads", false, "start the cluster with cluster.unsafe.local_linearizable_reads (the checker must fail)")
		skew     = flag.Duration("ttl-skew", 50*time.Millisecond, "clock skew bound of the TTL check")
		seed     = flag.Uint64("seed", 0, "random seed (default: time)")
		logStore = flag.String("log-store", "", "cluster.raft.log_store of every node: boltdb or wal (default: kvnode's, boltdb)")
		reap     = flag.Duration("reap-after", 10*time.Second, "cluster.reap_after: how long a dead node stays a voter (the remove nemesis waits for it)")
	)
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *out == "" {
		d, err := os.MkdirTemp("", "kvnode-jepsen-")
		if err != nil {
			logger.Error("out dir", "err", err)
			return 2
		}
		*out = d
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		logger.Error("out dir", "err", err)
		return 2
	}
	kinds := strings.Split(*nemeses, ",")
	switch *nemeses {
	case "all":
		kinds = harness.AllNemeses
	case "", "none":
		kinds = nil
	}
	workloads := harness.AllWorkloads
	if *loads != "all" {
		workloads = strings.Split(*loads, ",")
	}
	for _, w := range workloads {
		if !slices.Contains(harness.AllWorkloads, w) {
			logger.Error("unknown workload", "workload", w, "known", harness.AllWorkloads)
			return 2
		}
	}
	cs := clusterSpec{mode: *mode, image: *image, compose: *compose, project: *project, binary: *binary, out: *out,
		unsafe: *unsafe, reap: *reap, static: *static, logStore: *logStore}
	for _, k := range kinds {
		if !slices.Contains(harness.AllNemeses, k) {
			logger.Error("unknown nemesis", "nemesis", k, "known", harness.AllNemeses)
			return 2
		}
		cs.failpoints = cs.failpoints || harness.NeedFailpoints[k]
	}
	c, err := startCluster(ctx, cs, logger)
	if err != nil {
		logger.Error("start cluster", "err", err)
		return 2
	}
	defer func() {
		if d, ok := c.(*harness.Docker); ok {
			d.SaveLogs(context.WithoutCancel(ctx), *out)
		}
		if err := c.Close(context.WithoutCancel(ctx)); err != nil {
			logger.Warn("tear down", "err", err)
		}
	}()

	if *failover > 0 {
		return runFailover(ctx, c, *failover, *out, logger)
	}
	started := time.Now()
	res, err := harness.Run(ctx, c, harness.Options{
		Duration: *duration,
		Workload: harness.WorkloadOptions{Workers: *workers, Kinds: workloads},
		Nemesis:  harness.NemesisOptions{Kinds: kinds, ReapWait: *reap + 30*time.Second},
		OutDir:   *out,
		TTLSkew:  *skew,
		Seed:     *seed,
		Logger:   logger,
	})
	if err != nil {
		logger.Error("run", "err", err)
		if res != nil {
			_ = res.Save(*out, res.Summary(*out))
		}
		return 2
	}
	summary := res.Summary(*out) + fmt.Sprintf("wall time (cluster up to checks done): %s\n", time.Since(started).Round(time.Second))
	if err := res.Save(*out, summary); err != nil {
		logger.Warn("save", "err", err)
	}
	fmt.Print(summary)
	if len(res.Anomalies) > 0 {
		return 1
	}
	return 0
}

// clusterSpec is what the flags say about the cluster to start.
type clusterSpec struct {
	mode, image, compose, project, binary, out string
	logStore                                   string
	unsafe, static, failpoints                 bool
	reap                                       time.Duration
}

func startCluster(ctx context.Context, cs clusterSpec, logger *slog.Logger) (harness.Cluster, error) {
	mode := cs.mode
	if mode == "auto" {
		mode = "local"
		if harness.DockerAvailable(ctx) {
			mode = "docker"
		}
	}
	switch mode {
	case "docker":
		project := cs.project
		if project == "" {
			project = fmt.Sprintf("kvjepsen%d", time.Now().UnixNano()%1_000_000_000)
		}
		abs, err := filepath.Abs(cs.compose)
		if err != nil {
			return nil, err
		}
		var overrides []string
		if cs.failpoints {
			overrides = append(overrides, "docker/compose.failpoint.yml")
		}
		if cs.static {
			overrides = append(overrides, "docker/compose.static-peers.yml")
		}
		for i, o := range overrides {
			if overrides[i], err = filepath.Abs(o); err != nil {
				return nil, err
			}
		}
		logger.Info("starting docker cluster", "project", project, "image", cs.image, "failpoints", cs.failpoints, "static_peers", cs.static, "log_store", cs.logStore)
		return harness.StartDocker(ctx, harness.DockerOptions{ComposeFile: abs, Project: project, Image: cs.image, UnsafeLocalReads: cs.unsafe,
			ReapAfter: cs.reap, LogStore: cs.logStore, Overrides: overrides, Failpoints: cs.failpoints, Logger: logger})
	case "local":
		binary := cs.binary
		if binary == "" {
			binary = filepath.Join(cs.out, "kvnode")
			if err := harness.BuildKVNode(ctx, "..", binary, cs.failpoints); err != nil {
				return nil, err
			}
		}
		cfg, err := filepath.Abs("docker/kvnode.yaml")
		if err != nil {
			return nil, err
		}
		logger.Info("starting local processes", "binary", binary, "dir", cs.out, "failpoints", cs.failpoints, "static_peers", cs.static, "log_store", cs.logStore)
		return harness.StartProcesses(ctx, harness.ProcessesOptions{Binary: binary, Config: cfg, Dir: cs.out, UnsafeLocalReads: cs.unsafe,
			ReapAfter: cs.reap, LogStore: cs.logStore, Failpoints: cs.failpoints, StaticPeers: cs.static})
	}
	return nil, fmt.Errorf("unknown mode %q (want docker, local or auto)", mode)
}

func runFailover(ctx context.Context, c harness.Cluster, n int, out string, logger *slog.Logger) int {
	samples, err := harness.MeasureFailover(ctx, c, n, logger)
	var b strings.Builder
	fmt.Fprintf(&b, "failover: %s cluster, %d leader kills, raft timeouts as the cluster is configured\n", c.Name(), len(samples))
	for i, s := range samples {
		fmt.Fprintf(&b, "  kill %2d: leader %s, writes unavailable %s\n", i+1, s.Leader, s.Unavailable.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "p50 %s  p99 %s\n", harness.Percentile(samples, 50).Round(time.Millisecond), harness.Percentile(samples, 99).Round(time.Millisecond))
	fmt.Print(b.String())
	_ = os.WriteFile(filepath.Join(out, "failover.txt"), []byte(b.String()), 0o644)
	if err != nil {
		logger.Error("failover", "err", err)
		return 2
	}
	return 0
}
