package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/config"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/fsm"
	"github.com/kvnode/kvnode/internal/failpoint"
)

// openRaft opens the replicated storages' engines and starts raft over
// them. Engine problems are recorded in p (r is then nil); raft's error is
// returned, with the engines closed.
func openRaft(cfg *config.Config, env storageEnv, p *config.Problems) (*replicatedSet, error) {
	logger := env.logger
	cc := cfg.ClusterConfig
	r := &replicatedSet{engines: map[string]drivers.Engine{}}
	opts := cluster.Options{Logger: logger, RPCAddr: cfg.RPC.Listen, Tracing: env.tp,
		Limits: map[string]drivers.Limits{}, EvictionSamples: map[string]int{}, UnsyncedEngines: true}
	for i := range cfg.Storages {
		sc := &cfg.Storages[i]
		if !sc.Driver.Replicable() || sc.Settings == nil {
			continue
		}
		if sc.Limits.Bounded() {
			opts.Limits[sc.Name], opts.EvictionSamples[sc.Name] = sc.Limits, sc.EvictionSamples
			logger.Info("storage bounded (the leader's limits are the cluster's)", "storage", sc.Name,
				"limits", sc.Limits.String(), "max_memory_of", sc.LimitSource)
		}
		// Relative files live in the node's data dir, so nodes sharing a
		// working directory (three local processes) never share a file.
		// Unsynced: the raft log is the storage's durable record (cluster/recovery.go).
		env := drivers.Env{Storage: sc.Name, Logger: logger.With("storage", sc.Name), DataDir: cc.DataDir, Given: sc.Given, Unsynced: true}
		e, err := sc.Driver.OpenEngine(sc.Settings, env)
		if err != nil {
			p.AddStorage(sc, err)
			continue
		}
		r.engines[sc.Name] = e
	}
	if p.Err() != nil {
		_ = r.close()
		return nil, nil //nolint:nilerr // the engines' problems are reported in p, with the config's
	}
	f := fsm.New(r.engines, logger, fsm.WithSpoolDir(cc.DataDir))
	// The configured RPC address goes into gossip metadata, for tools that
	// discover nodes (status, the jepsen harness). The clock is time.Now
	// except in a failpoint build, where the harness can offset it.
	opts.Clock = failpoint.Now
	node, err := cluster.Open(*cc, f, opts)
	if err != nil {
		_ = r.close()
		return nil, err //nolint:wrapcheck // reported under "cluster"
	}
	r.node = node
	return r, nil
}

// engineFiles lists the files of the replicated persistent storages.
func engineFiles(cfg *config.Config) []string {
	var out []string
	for _, sc := range cfg.Storages {
		if !sc.Driver.Replicable() || sc.Driver.File == nil || sc.Settings == nil {
			continue
		}
		out = append(out, sc.Driver.File(sc.Settings, cfg.ClusterConfig.DataDir))
	}
	return out
}

// replicatedSet is the raft side of a clustered kvnode.
type replicatedSet struct {
	node    *cluster.Node
	engines map[string]drivers.Engine
}

// leaveTimeout bounds the graceful part of a stop: handing over
// leadership, announcing the departure in gossip, leaving raft. Container
// runtimes send SIGKILL about 10s after SIGTERM.
const leaveTimeout = 8 * time.Second

// leave runs before close on a graceful stop (SIGTERM/SIGINT), once no
// request is running any more: see cluster.Node.Leave. Problems are logged;
// the node stops either way.
func (r *replicatedSet) leave(logger *slog.Logger) {
	if r == nil || r.node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if err := r.node.Leave(ctx); err != nil {
		logger.Warn("leaving the cluster", "err", err)
	}
}

// close stops raft before the engines: an apply on a closed engine would
// stop the node loudly.
func (r *replicatedSet) close() error {
	if r == nil {
		return nil
	}
	var errs []error
	if r.node != nil {
		errs = append(errs, r.node.Close())
	}
	for name, e := range r.engines {
		if err := e.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close storage %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// openReplicated opens the replicated storages of a cluster node and
// starts raft over them. Problems are recorded under the storage or
// cluster path; on any problem nothing is left open.
func openReplicated(cfg *config.Config, env storageEnv, p *config.Problems) (*replicatedSet, []namedStore) {
	logger := env.logger
	cc := cfg.ClusterConfig
	if err := os.MkdirAll(cc.DataDir, 0o750); err != nil {
		p.Add("cluster.data_dir", err)
		return nil, nil
	}
	if err := cluster.CheckEngineFiles(cc.DataDir, nil); err != nil {
		// An OS crash while the storages' files were written without
		// fsync: move them aside before bbolt reads them; raft rebuilds
		// them from its snapshot and log.
		dir, qerr := cluster.Quarantine(cc.DataDir, engineFiles(cfg), err)
		if qerr != nil {
			p.Add("cluster", fmt.Errorf("%w; moving them aside failed: %w", err, qerr))
			return nil, nil
		}
		logger.Error("recovering from an OS crash or power loss: storage files moved aside, rebuilt from the raft log",
			"cause", err, "moved_to", dir)
	}
	r, err := openRaft(cfg, env, p)
	if errors.Is(err, cluster.ErrRaftStateLost) || errors.Is(err, cluster.ErrEnginesAhead) {
		// No_sync and an OS crash: what raft may have forgotten is moved
		// aside and the node starts again from the rest (cluster/recovery.go).
		dir, qerr := cluster.Quarantine(cc.DataDir, engineFiles(cfg), err)
		if qerr != nil {
			p.Add("cluster", fmt.Errorf("%w; moving it aside failed: %w", err, qerr))
			return nil, nil
		}
		then := "the storages are rebuilt from the raft log"
		if errors.Is(err, cluster.ErrRaftStateLost) {
			then = "this node rejoins as a new member and catches up"
		}
		logger.Error("raft.no_sync: recovering from an OS crash or power loss: state moved aside, starting again",
			"cause", err, "moved_to", dir, "then", then)
		r, err = openRaft(cfg, env, p)
	}
	if err != nil {
		p.Add("cluster", err)
		return nil, nil
	}
	if r == nil {
		return nil, nil
	}
	node := r.node
	var stores []namedStore
	for _, sc := range cfg.Storages {
		if _, ok := r.engines[sc.Name]; !ok {
			continue
		}
		st, err := node.Store(sc.Name, sc.Consistency)
		if err != nil {
			p.Add(sc.ConfigPath, err)
			continue
		}
		stores = append(stores, namedStore{name: sc.Name, driver: sc.Driver, store: st})
	}
	return r, stores
}
