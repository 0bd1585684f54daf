package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/kvnode/kvnode/config"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/internal/cli"
	"github.com/kvnode/kvnode/internal/failpoint"
	"github.com/kvnode/kvnode/internal/telemetry"
	"github.com/kvnode/kvnode/ops"
	"github.com/kvnode/kvnode/rpc"
)

// tracingFlushTimeout bounds the export of buffered spans at exit, so an
// unreachable collector cannot hold up shutdown.
const tracingFlushTimeout = 5 * time.Second

// serveOptions is what serve needs from the command line and the process.
type serveOptions struct {
	load   config.Options
	stdout io.Writer
	stderr io.Writer
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("serve", "[-c .rr.yaml] [-o key.path=value]...", stderr)
	file := fs.String("c", "", "configuration `file` (RoadRunner .rr.yaml); default: the embedded one (memory storage \"default\" on "+config.DefaultListen+")")
	var overrides cli.StringsFlag
	fs.Var(&overrides, "o", "override a configuration value, e.g. -o rpc.listen=tcp://127.0.0.1:7001 (repeatable)")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", cli.ErrUsage, fs.Arg(0))
	}
	return serve(ctx, serveOptions{
		load:   config.Options{File: *file, Overrides: overrides, Drivers: storageDrivers()},
		stdout: stdout,
		stderr: stderr,
	})
}

// serve runs kvnode until ctx is cancelled (SIGINT/SIGTERM), then shuts
// down gracefully: stop accepting, let requests in flight finish within
// the grace period, close the storages (boltdb files), flush spans.
//
// Every problem that keeps kvnode from starting is reported in one error:
// configuration mistakes, and also what only opening reveals (an unreadable
// boltdb file, an address already in use). To find the latter, the
// storages whose settings are valid are opened even when others are not,
// and closed again.
func serve(ctx context.Context, o serveOptions) (err error) {
	cfg, p, err := config.Read(o.load)
	if err != nil {
		return err
	}
	logger, closeLogs, lerr := telemetry.NewLogger(cfg.Logs, o.stdout, o.stderr)
	if lerr != nil {
		p.Add("logs.output", errors.Unwrap(lerr))
		logger, closeLogs = slog.New(slog.NewTextHandler(o.stderr, nil)), func() error { return nil }
	}
	defer func() { err = errors.Join(err, closeLogs()) }()
	// Only a build with the failpoint tag serves the fault-injection
	// endpoint (KVNODE_FAILPOINT_ADDR); in any other build this does nothing.
	if ferr := failpoint.Serve(ctx, logger); ferr != nil {
		p.Add("", ferr)
	}
	if lim := softMemoryLimit(cfg.Storages, os.LookupEnv); lim > 0 {
		// Restored on return: tests run serve in their own process.
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(lim))
		logger.Info("go runtime soft memory limit set from max_memory (set GOMEMLIMIT to choose another)",
			"limit", drivers.FormatBytes(lim))
	}

	tr := &telemetry.Tracing{Shutdown: func(context.Context) error { return nil }}
	if !p.Has("otel") {
		t, terr := telemetry.NewTracing(ctx, cfg.OTel, buildVersion(), o.stdout, o.stderr)
		if terr != nil {
			p.Add("otel", terr)
		} else {
			tr = t
		}
	}
	defer func() { err = errors.Join(err, flushTracing(tr)) }()

	env := storageEnv{logger: logger}
	if tr.Enabled {
		env.tp = tr.Provider
	}
	stores := openStorages(cfg.Storages, env, cfg.ClusterConfig != nil, p)
	var repl *replicatedSet
	if cfg.ClusterConfig != nil && p.Err() == nil {
		var rstores []namedStore
		repl, rstores = openReplicated(cfg, env, p)
		stores = append(rstores, stores...)
	}
	admin := newNodeAdmin(stores, repl, logger)
	metrics := newMetrics(cfg, stores, admin)
	hooks := rpcHooks{admin: admin}
	if metrics != nil {
		hooks.observer = metrics
	}
	srv := newRPCServer(cfg, stores, env, hooks, logger, p)
	opsSrv := startOps(cfg, metrics, admin, p)
	if err := p.Err(); err != nil {
		admin.close()
		if opsSrv != nil {
			_ = opsSrv.Shutdown(context.Background())
		}
		return errors.Join(err, closeStores(stores), repl.close())
	}
	if repl != nil {
		// With port 0 only the bound address tells peers where to send
		// clients (backup restore finds the leader through it).
		repl.node.SetRPCAddr(listenURL(cfg.RPC.Listen, srv))
	}

	for _, w := range cfg.Warnings {
		logger.Warn("config: " + w)
	}
	logger.Info("kvnode serving", "rpc", listenURL(cfg.RPC.Listen, srv), "storages", describe(stores),
		"ops", opsAddrs(opsSrv), "config", cfg.Source, "version", buildVersion())

	served := make(chan error, 2)
	go func() { served <- srv.Serve() }()
	if opsSrv != nil {
		go func() {
			if err := opsSrv.Serve(); err != nil {
				served <- err
			}
		}()
	}
	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("kvnode shutting down", "grace_period", cfg.GracePeriod)
	case serveErr = <-served:
		logger.Error("server failed", "err", serveErr)
	}
	return shutdown(servers{rpc: srv, ops: opsSrv, admin: admin}, stores, repl, cfg.GracePeriod, logger, serveErr)
}

// rpcHooks are what the RPC server reports to and serves besides kv.
type rpcHooks struct {
	observer rpc.Observer // nil: no metrics
	admin    rpc.Admin
}

// servers are what shutdown stops before closing the storages.
type servers struct {
	rpc   *rpc.Server
	ops   *ops.Server
	admin *nodeAdmin
}

// newRPCServer builds the server and binds its address, recording failures.
func newRPCServer(cfg *config.Config, stores []namedStore, env storageEnv, hooks rpcHooks, logger *slog.Logger, p *config.Problems) *rpc.Server {
	if p.Has("rpc") {
		return nil
	}
	storages := make([]rpc.Storage, len(stores))
	for i, s := range stores {
		// A single-node memory storage answers in microseconds, so the
		// server may run its calls on the connection's reader; a
		// replicated one its reads, whenever they have nothing to wait for.
		storages[i] = rpc.Storage{Name: s.name, Driver: s.driver, Store: s.store, Inline: s.driver.Inline && cfg.ClusterConfig == nil}
		if r, ok := s.store.(drivers.ReadyReporter); ok && s.driver.Inline && !storages[i].Inline {
			storages[i].ReadsInline = r.ReadsReady
		}
	}
	srv, err := rpc.New(rpc.Config{
		Listen:          cfg.RPC.Listen,
		MaxFrameSize:    cfg.RPC.MaxFrameSize,
		RequestTimeout:  cfg.RPC.RequestTimeout,
		IdleTimeout:     cfg.RPC.IdleTimeout,
		FrameTimeout:    cfg.RPC.FrameTimeout,
		WriteTimeout:    cfg.RPC.WriteTimeout,
		MaxInFlight:     cfg.RPC.MaxInFlight,
		MaxItems:        cfg.RPC.MaxItems,
		MaxConnections:  cfg.RPC.MaxConnections,
		MaxReplyBacklog: cfg.RPC.MaxReplyBacklog,
		AdminToken:      cfg.RPC.AdminToken,
		Observer:        hooks.observer,
		Admin:           hooks.admin,
	}, storages, env.tp, logger)
	if err != nil {
		p.Add("rpc", err)
		return nil
	}
	if err := srv.Listen(); err != nil {
		key := "rpc.listen"
		if errors.Is(err, rpc.ErrInsecureAdmin) {
			key = "rpc.admin_token"
		}
		p.Add(key, err)
		return nil
	}
	return srv
}

// shutdown stops the server within grace, then closes the storages even if
// requests were cut off (they then fail with "storage closed").
func shutdown(s servers, stores []namedStore, repl *replicatedSet, grace time.Duration, logger *slog.Logger, serveErr error) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var errs []error
	if serveErr != nil {
		errs = append(errs, serveErr)
	}
	// Probes and scrapes are short; they stop with the RPC server.
	opsDone := make(chan error, 1)
	go func() {
		if s.ops != nil {
			opsDone <- s.ops.Shutdown(ctx)
			return
		}
		opsDone <- nil
	}()
	if err := s.rpc.Shutdown(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("requests still running after the grace period (%s) were cut off", grace)
		}
		logger.Warn("rpc shutdown", "err", err)
		errs = append(errs, err)
	}
	if err := <-opsDone; err != nil {
		logger.Warn("ops shutdown", "err", err)
		errs = append(errs, err)
	}
	s.admin.close()
	// Hand over leadership and leave the cluster before raft stops.
	repl.leave(logger)
	if err := errors.Join(closeStores(stores), repl.close()); err != nil {
		logger.Error("closing storages", "err", err)
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		logger.Info("kvnode stopped")
	}
	return errors.Join(errs...)
}

func flushTracing(tr *telemetry.Tracing) error {
	ctx, cancel := context.WithTimeout(context.Background(), tracingFlushTimeout)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		return fmt.Errorf("otel: flush spans: %w", err)
	}
	return nil
}

// listenURL is the DSN actually listened on: with port 0 the kernel picks
// the port, and the log line must say which.
func listenURL(configured string, srv *rpc.Server) string {
	a := srv.Addr()
	if a == nil {
		return configured
	}
	return a.Network() + "://" + a.String()
}

// describe renders the served storages as name(driver) pairs.
func describe(stores []namedStore) string {
	parts := make([]string, len(stores))
	for i, s := range stores {
		parts[i] = s.name + "(" + s.driver.Name + ")"
	}
	return strings.Join(parts, ",")
}

// gcFixedRoom is the soft memory limit's allowance for what a node holds
// besides its storages: the runtime, buffers, the raft log cache, a
// snapshot being written, requests in flight.
const gcFixedRoom = 128 << 20

// softMemoryLimit is the Go runtime's soft memory limit for a node whose
// memory storages (those of boundable drivers, which hold their values in
// the heap) are all bounded by max_memory: their limits, a quarter more
// for garbage, and gcFixedRoom. Under it the collector runs before the
// heap doubles (GOGC's default), so the process's RSS follows max_memory
// instead of twice the live heap. 0 (no limit) when a memory storage is
// unbounded, when there is none, or when the operator set GOMEMLIMIT.
func softMemoryLimit(storages []config.StorageConfig, lookupEnv func(string) (string, bool)) int64 {
	if _, set := lookupEnv("GOMEMLIMIT"); set {
		return 0
	}
	var total int64
	for _, sc := range storages {
		if !sc.Driver.Boundable() {
			continue
		}
		if sc.Limits.MaxBytes <= 0 {
			return 0
		}
		total += sc.Limits.MaxBytes
	}
	if total == 0 {
		return 0
	}
	return total + total/4 + gcFixedRoom
}
