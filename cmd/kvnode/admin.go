package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/rpc"
)

// errNeedsCluster refuses backups on a standalone kvnode: they are
// snapshots of the replicated state.
var errNeedsCluster = errors.New("snapshot needs a cluster: this kvnode runs without a cluster section (standalone); " +
	"back up a boltdb file by copying it while kvnode is stopped")

// nodeAdmin is what the kvnode admin service and the ops endpoint know of
// this process: the cluster node and its monitor (nil when standalone) and
// every served storage. It implements rpc.Admin.
type nodeAdmin struct {
	cluster  *cluster.Node
	monitor  *cluster.Monitor
	storages []storageRef
	logger   *slog.Logger
}

var _ rpc.Admin = (*nodeAdmin)(nil)

// storageRef is a served storage; engine is nil for pass-through drivers
// (redis, memcached), whose size kvnode does not know.
type storageRef struct {
	name       string
	driver     drivers.Driver
	engine     drivers.Engine
	replicated bool
}

// newNodeAdmin describes what serve opened and, in a cluster, starts the
// monitor (before the RPC server takes traffic, so the first leader is
// counted).
func newNodeAdmin(stores []namedStore, repl *replicatedSet, logger *slog.Logger) *nodeAdmin {
	a := &nodeAdmin{logger: logger}
	if repl != nil && repl.node != nil {
		a.cluster = repl.node
		a.monitor = cluster.NewMonitor(repl.node, logger)
	}
	for _, s := range stores {
		ref := storageRef{name: s.name, driver: s.driver}
		if repl != nil && repl.engines[s.name] != nil {
			ref.engine, ref.replicated = repl.engines[s.name], true
		} else if l, ok := s.store.(interface{ Engine() drivers.Engine }); ok {
			ref.engine = l.Engine()
		}
		a.storages = append(a.storages, ref)
	}
	return a
}

// close stops the monitor; call it before the node closes.
func (a *nodeAdmin) close() {
	if a != nil && a.monitor != nil {
		a.monitor.Close()
	}
}

// ready is /ready: a standalone node is always ready.
func (a *nodeAdmin) ready() (bool, string) {
	if a.monitor == nil {
		return true, ""
	}
	return a.monitor.Ready()
}

// Status implements rpc.Admin: the cluster's view plus every storage.
func (a *nodeAdmin) Status(ctx context.Context) (any, error) {
	st := cluster.Status{NodeID: cluster.RoleStandalone, Role: cluster.RoleStandalone, Ready: true}
	if a.monitor != nil {
		st = a.monitor.Status(ctx)
	}
	// The cluster lists its replicated storages without drivers; the rest
	// are this process's own.
	var out []cluster.StorageStatus
	for _, ref := range a.storages {
		s := cluster.StorageStatus{Name: ref.name, Driver: ref.driver.Name, Replicated: ref.replicated, Keys: -1, Bytes: -1}
		for _, cs := range st.Storages {
			if cs.Name == ref.name {
				s = cs
				s.Driver = ref.driver.Name
			}
		}
		if !s.Replicated && ref.engine != nil {
			s = cluster.StorageStatusOf(ref.name, ref.engine.Stats())
			s.Driver = ref.driver.Name
		}
		out = append(out, s)
	}
	st.Storages = out
	return st, nil
}

// Health implements rpc.Admin.
func (a *nodeAdmin) Health(context.Context) (rpc.HealthReply, error) {
	h := rpc.HealthReply{NodeID: cluster.RoleStandalone, Role: cluster.RoleStandalone}
	if a.cluster != nil {
		h.NodeID, h.Role = a.cluster.ID(), cluster.Role(a.cluster.Raft().State())
	}
	h.Ready, h.Reason = a.ready()
	return h, nil
}

// Snapshot implements rpc.Admin.
func (a *nodeAdmin) Snapshot(ctx context.Context, stale bool) (rpc.SnapshotOpenReply, io.ReadCloser, error) {
	if a.cluster == nil {
		return rpc.SnapshotOpenReply{}, nil, errNeedsCluster
	}
	info, rc, err := a.cluster.Backup(ctx, stale)
	if err != nil {
		return rpc.SnapshotOpenReply{}, nil, err //nolint:wrapcheck // cluster errors name themselves
	}
	return rpc.SnapshotOpenReply{NodeID: info.NodeID, Index: info.Index, Term: info.Term, Size: info.Size}, rc, nil
}

// errEventsNeedCluster refuses kvnode events on a standalone kvnode.
var errEventsNeedCluster = errors.New("events need a cluster: a standalone kvnode keeps no event log " +
	"(its writes go straight to the storage)")

// Events implements rpc.Admin: a page of the decoded raft log.
func (a *nodeAdmin) Events(ctx context.Context, args rpc.EventsArgs) (any, error) {
	if a.cluster == nil {
		return nil, errEventsNeedCluster
	}
	page, err := a.cluster.Events(ctx, cluster.EventsQuery{Since: args.Since, Storage: args.Storage, Max: args.Max, Wait: args.Wait})
	if err != nil {
		return nil, err //nolint:wrapcheck // cluster errors name themselves
	}
	return page, nil
}

// Restore implements rpc.Admin. A follower's refusal names the leader's
// RPC address when gossip knows it, so the CLI can go there.
func (a *nodeAdmin) Restore(ctx context.Context, r io.Reader) (any, error) {
	if a.cluster == nil {
		return nil, errNeedsCluster
	}
	info, err := a.cluster.RestoreBackup(ctx, r)
	if errors.Is(err, cluster.ErrNotLeader) {
		if rpcAddr := leaderRPCAddr(a.cluster); rpcAddr != "" {
			return nil, fmt.Errorf("%w; leader RPC address %s", err, rpcAddr)
		}
	}
	if err != nil {
		return nil, err //nolint:wrapcheck // cluster errors name themselves
	}
	return info, nil
}
