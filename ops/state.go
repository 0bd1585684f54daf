package ops

import "github.com/prometheus/client_golang/prometheus"

// State is what the node reports at each scrape.
type State struct {
	// Raft is nil for a standalone node.
	Raft *RaftState
	// Storages lists the storages whose size is known (memory, boltdb).
	Storages []StorageState
	// Gossip counts gossip members by state (alive, suspect, dead, left);
	// nil without gossip.
	Gossip map[string]int
	// Ready is what /ready answers.
	Ready bool
}

// RaftState is a node's raft progress.
type RaftState struct {
	// State is leader, follower, candidate or shutdown.
	State                                                     string
	HasLeader                                                 bool
	Term, CommitIndex, AppliedIndex, FSMAppliedIndex, LastLog uint64
	LeaderChanges                                             uint64
}

// StorageState is one storage's size and, when bounded, its limits and
// what they cost.
type StorageState struct {
	Name, Driver string
	Keys, Bytes  int64
	// Boundable marks a storage whose driver takes max_memory and
	// max_keys (memory): only such storages export usage and limits.
	Boundable bool
	// Usage is what max_memory is compared with (0: not accounted).
	Usage int64
	// MaxBytes and MaxKeys are the limits (0: none), Policy their
	// eviction policy; Evicted and Rejected count since the node started.
	MaxBytes, MaxKeys int64
	Policy            string
	Evicted, Rejected int64
}

// raftStates are the values of kvnode_raft_state's label, all exported so
// that a query for the leader sees 0 rather than nothing.
var raftStates = []string{"leader", "follower", "candidate", "shutdown"}

// gossipStates are the values of kvnode_gossip_members' label.
var gossipStates = []string{"alive", "suspect", "dead", "left"}

var (
	descTerm          = prometheus.NewDesc("kvnode_raft_term", "Current raft term.", nil, nil)
	descCommit        = prometheus.NewDesc("kvnode_raft_commit_index", "Highest log index this node knows committed.", nil, nil)
	descApplied       = prometheus.NewDesc("kvnode_raft_applied_index", "Raft's applied index (no-op and configuration entries included).", nil, nil)
	descLastLog       = prometheus.NewDesc("kvnode_raft_last_log_index", "Last index in this node's raft log.", nil, nil)
	descFSMApplied    = prometheus.NewDesc("kvnode_fsm_applied_index", "Last log index the state machine applied: what reads see.", nil, nil)
	descLeaderChanges = prometheus.NewDesc("kvnode_raft_leader_changes_total", "Leaders this node has seen since it started.", nil, nil)
	descRaftState     = prometheus.NewDesc("kvnode_raft_state", "1 for this node's current raft state.", []string{"state"}, nil)
	descHasLeader     = prometheus.NewDesc("kvnode_raft_has_leader", "1 when this node knows a leader.", nil, nil)
	descKeys          = prometheus.NewDesc("kvnode_storage_keys", "Keys held by a storage, expired but not yet swept included.", []string{"storage", "driver"}, nil)
	descBytes         = prometheus.NewDesc("kvnode_storage_bytes", "Bytes of keys and values held by a storage.", []string{"storage", "driver"}, nil)
	descUsage         = prometheus.NewDesc("kvnode_storage_usage_bytes", "What a memory storage's max_memory is compared with: keys, values and a per-key overhead.", []string{"storage", "driver"}, nil)
	descLimitBytes    = prometheus.NewDesc("kvnode_storage_limit_bytes", "A bounded storage's max_memory.", []string{"storage", "driver"}, nil)
	descLimitKeys     = prometheus.NewDesc("kvnode_storage_limit_keys", "A bounded storage's max_keys.", []string{"storage", "driver"}, nil)
	descEvictions     = prometheus.NewDesc("kvnode_storage_evictions_total", "Keys this node's engine evicted to keep a storage within its limits.", []string{"storage", "policy"}, nil)
	descRejected      = prometheus.NewDesc("kvnode_storage_rejected_writes_total", "Writes this node's engine refused because they would pass a storage's limits.", []string{"storage"}, nil)
	descGossip        = prometheus.NewDesc("kvnode_gossip_members", "Gossip members this node knows, by state.", []string{"state"}, nil)
	descReady         = prometheus.NewDesc("kvnode_ready", "1 when the node is ready (what /ready answers).", nil, nil)
)

// stateCollector turns State into metrics at scrape time.
type stateCollector struct{ m *Metrics }

// Describe implements prometheus.Collector.
func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTerm, descCommit, descApplied, descLastLog, descFSMApplied,
		descLeaderChanges, descRaftState, descHasLeader, descKeys, descBytes, descGossip, descReady,
		descUsage, descLimitBytes, descLimitKeys, descEvictions, descRejected} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.m.readState()
	if !ok {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if r := st.Raft; r != nil {
		gauge(descTerm, float64(r.Term))
		gauge(descCommit, float64(r.CommitIndex))
		gauge(descApplied, float64(r.AppliedIndex))
		gauge(descLastLog, float64(r.LastLog))
		gauge(descFSMApplied, float64(r.FSMAppliedIndex))
		ch <- prometheus.MustNewConstMetric(descLeaderChanges, prometheus.CounterValue, float64(r.LeaderChanges))
		for _, s := range raftStates {
			gauge(descRaftState, boolFloat(s == r.State), s)
		}
		gauge(descHasLeader, boolFloat(r.HasLeader))
	}
	for _, s := range st.Storages {
		gauge(descKeys, float64(s.Keys), s.Name, s.Driver)
		gauge(descBytes, float64(s.Bytes), s.Name, s.Driver)
		if !s.Boundable {
			continue
		}
		gauge(descUsage, float64(s.Usage), s.Name, s.Driver)
		if s.MaxBytes > 0 {
			gauge(descLimitBytes, float64(s.MaxBytes), s.Name, s.Driver)
		}
		if s.MaxKeys > 0 {
			gauge(descLimitKeys, float64(s.MaxKeys), s.Name, s.Driver)
		}
		if s.MaxBytes > 0 || s.MaxKeys > 0 {
			ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, float64(s.Evicted), s.Name, s.Policy)
			ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(s.Rejected), s.Name)
		}
	}
	if st.Gossip != nil {
		for _, s := range gossipStates {
			gauge(descGossip, float64(st.Gossip[s]), s)
		}
	}
	gauge(descReady, boolFloat(st.Ready))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
