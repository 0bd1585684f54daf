package main

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/config"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/ops"
	"github.com/kvnode/kvnode/rpc"
)

// classifyError names the kind of a failed call for
// kvnode_rpc_errors_total, from the sentinels the error wraps.
func classifyError(err error) string {
	switch {
	case errors.Is(err, rpc.ErrUnknownStorage), errors.Is(err, rpc.ErrNoStorage):
		return "no_such_storage"
	case errors.Is(err, drivers.ErrEmptyKey), errors.Is(err, rpc.ErrTimeout), errors.Is(err, rpc.ErrMExpireItem),
		errors.Is(err, rpc.ErrDecode), errors.Is(err, rpc.ErrCodec), errors.Is(err, rpc.ErrUnknownMethod),
		errors.Is(err, rpc.ErrAdminSession), errors.Is(err, rpc.ErrAdminOffset):
		return "bad_request"
	case errors.Is(err, cluster.ErrShutdown), errors.Is(err, drivers.ErrClosed):
		return "shutdown"
	case errors.Is(err, cluster.ErrOutcomeUnknown):
		return "outcome_unknown"
	case errors.Is(err, cluster.ErrNotLinearizable):
		return "not_linearizable"
	case errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrNotLeader):
		return "no_leader"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timeout"
	case errors.Is(err, rpc.ErrInternal):
		return "internal"
	case errors.Is(err, drivers.ErrFull):
		return "storage_full"
	default:
		return "other"
	}
}

// newMetrics builds the registry for the served storages and hooks the
// state machine's observer; nil when no ops address is configured.
func newMetrics(cfg *config.Config, stores []namedStore, n *nodeAdmin) *ops.Metrics {
	if len(cfg.Ops.Addresses) == 0 {
		return nil
	}
	names := make([]string, len(stores))
	for i, s := range stores {
		names[i] = s.name
	}
	m := ops.NewMetrics(ops.Options{Storages: names, Classify: classifyError, Version: buildVersion()})
	if n.cluster != nil {
		n.cluster.FSM().SetObserver(m)
	}
	m.SetState(n.opsState)
	return m
}

// opsState is what a scrape reads: raft progress, storage sizes, gossip.
func (n *nodeAdmin) opsState() ops.State {
	st := ops.State{}
	st.Ready, _ = n.ready()
	for _, s := range n.storages {
		if s.engine == nil {
			continue
		}
		es := s.engine.Stats()
		ss := ops.StorageState{Name: s.name, Driver: s.driver.Name, Boundable: s.driver.Boundable(), Keys: es.Keys,
			Bytes: es.Bytes, Usage: es.Usage, Evicted: es.Evicted, Rejected: es.Rejected}
		if es.Limits.Bounded() {
			ss.MaxBytes, ss.MaxKeys, ss.Policy = es.Limits.MaxBytes, es.Limits.MaxKeys, es.Limits.Policy.String()
		}
		st.Storages = append(st.Storages, ss)
	}
	c := n.cluster
	if c == nil {
		return st
	}
	r := c.Raft()
	leaderID, _ := c.Leader()
	st.Raft = &ops.RaftState{
		State:           cluster.Role(r.State()),
		HasLeader:       leaderID != "",
		Term:            r.CurrentTerm(),
		CommitIndex:     r.CommitIndex(),
		AppliedIndex:    r.AppliedIndex(),
		FSMAppliedIndex: c.FSM().AppliedIndex(),
		LastLog:         r.LastIndex(),
		LeaderChanges:   n.monitor.LeaderChanges(),
	}
	st.Gossip = gossipCounts(c)
	return st
}

// startOps binds the ops endpoint, recording a failure as a problem.
func startOps(cfg *config.Config, m *ops.Metrics, n *nodeAdmin, p *config.Problems) *ops.Server {
	if len(cfg.Ops.Addresses) == 0 {
		return nil
	}
	s, err := ops.NewServer(cfg.Ops.Addresses, m, n.ready, cfg.Ops.Pprof, n.logger)
	if err != nil {
		p.Add("metrics.address", err)
		return nil
	}
	return s
}

// opsAddrs renders the bound ops addresses for the start-up log line.
func opsAddrs(s *ops.Server) string {
	if s == nil {
		return "off"
	}
	var out []string
	for _, a := range s.Addrs() {
		out = append(out, "http://"+a.String())
	}
	return strings.Join(slices.Compact(out), ",")
}
