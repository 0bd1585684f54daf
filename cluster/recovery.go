package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
	eventlog "github.com/kvnode/kvnode/log"
)

// Two things a node writes are not fsynced, and an OS crash or power loss
// (not a process crash: the kernel's page cache outlives the process) can
// lose or tear them. The node finds out from its running marker: it did
// not stop cleanly, and the machine has booted since it started (Linux's
// boot id changed), so its page cache is gone.
//
// Persistent storages' files on a cluster node (drivers.Env.Unsynced):
// the raft log and snapshots are their durable record, so bbolt commits
// without its two fdatasyncs per batch. After an OS crash such a file may
// be torn in ways bbolt cannot see (a meta page written before the pages it
// points to), so CheckEngineFiles, before the engines are opened, answers
// ErrEnginesTorn: the caller moves the files aside (Quarantine) and they
// are rebuilt from the latest snapshot and the log.
//
// The raft log itself with cluster.raft.no_sync: an OS crash can drop its
// tail, and with it entries this node acknowledged, and its vote. That is
// amnesia (identity.go): the node must not go on as the voter it was. Open
// finds out in two ways:
//
//   - a persistent engine holds entries the log no longer has, or
//   - the running marker, as above.
//
// Then Open fails with ErrRaftStateLost when the cluster has other voters:
// the caller closes the engines, moves the raft state and the engines'
// files aside (Quarantine) and opens again, and the node comes back as a
// new member that catches up from the others. A node that is the only
// voter has nobody to catch up from: it keeps its log, and an engine ahead
// of it is rebuilt from the log (ErrEnginesAhead, the engines' files
// only); writes acknowledged in the lost tail are gone, which is what
// no_sync trades for latency.

var (
	// ErrRaftStateLost means this node's raft log may have lost entries it
	// acknowledged (no_sync and an OS crash): Quarantine the raft state and
	// the engines, and open again as a new member.
	ErrRaftStateLost = errors.New("raft log lost its tail (raft.no_sync and an OS crash or power loss)")
	// ErrEnginesAhead means a persistent engine of the only voter holds
	// entries its raft log lost: Quarantine the engines' files and open
	// again, which rebuilds them from the log.
	ErrEnginesAhead = errors.New("storage ahead of the raft log (raft.no_sync and an OS crash or power loss)")
	// ErrEnginesTorn means the persistent storages' files were committed
	// without fsync and the machine restarted while the node was running:
	// Quarantine them before opening them; raft rebuilds them.
	ErrEnginesTorn = errors.New("storage files written without fsync may be torn (an OS crash or power loss while the node ran)")
)

// runningFile marks a node that has not stopped cleanly.
const runningFile = "running.json"

// bootIDFile is Linux's id of the current boot.
const bootIDFile = "/proc/sys/kernel/random/boot_id"

// running is what runningFile holds.
type running struct {
	BootID string `json:"boot_id"`
	NoSync bool   `json:"no_sync"`
	// EnginesUnsynced: the persistent engines commit without fsync.
	EnginesUnsynced bool `json:"engines_unsynced,omitempty"`
}

// crashedAcrossBoot reports whether the node with this marker did not
// stop cleanly and the machine has booted since (boot unknown: no).
func (r running) crashedAcrossBoot(hadMarker bool, boot string) bool {
	return hadMarker && r.BootID != "" && boot != "" && r.BootID != boot
}

// CheckEngineFiles returns ErrEnginesTorn when the persistent storages'
// files in dataDir cannot be trusted (see above); call it before opening
// them. bootID returns the machine's current boot id; nil reads Linux's.
func CheckEngineFiles(dataDir string, bootID func() string) error {
	prev, hadMarker := readRunning(dataDir)
	if bootID == nil {
		bootID = linuxBootID
	}
	if prev.EnginesUnsynced && prev.crashedAcrossBoot(hadMarker, bootID()) {
		return fmt.Errorf("%w: marked running in %s by boot %s", ErrEnginesTorn, dataDir, prev.BootID)
	}
	return nil
}

// checkDurability decides, before raft starts, whether this node's raft
// state can be trusted (see above), and marks the node running.
func (n *Node) checkDurability() error {
	ahead, err := n.enginesAhead()
	if err != nil {
		return err
	}
	prev, hadMarker := readRunning(n.cfg.DataDir)
	boot := n.bootID()
	rebooted := prev.NoSync && prev.crashedAcrossBoot(hadMarker, boot)
	switch {
	case len(ahead) > 0 && !n.cfg.Raft.NoSync:
		return fmt.Errorf("%w: %s: it belongs to another cluster or the data dir was replaced; move the storage file away to start empty",
			ErrConfig, strings.Join(ahead, "; "))
	case len(ahead) > 0 || rebooted:
		why := "the machine restarted while this node was running"
		if len(ahead) > 0 {
			why = strings.Join(ahead, "; ")
		}
		voters, err := n.lastVoters()
		if err != nil {
			return err
		}
		if len(voters) > 1 || len(voters) == 1 && voters[0] != n.cfg.NodeID {
			return fmt.Errorf("%w: %s", ErrRaftStateLost, why)
		}
		if len(ahead) > 0 {
			return fmt.Errorf("%w: %s", ErrEnginesAhead, why)
		}
		n.logger.Warn("raft.no_sync: the machine restarted while this node, the only voter, was running: "+
			"writes acknowledged just before may be lost", "data_dir", n.cfg.DataDir)
	}
	return writeRunning(n.cfg.DataDir, running{BootID: boot, NoSync: n.cfg.Raft.NoSync, EnginesUnsynced: n.opts.UnsyncedEngines})
}

// enginesAhead describes the persistent engines whose applied index is
// beyond the end of the raft log (and its latest snapshot).
func (n *Node) enginesAhead() ([]string, error) {
	last, err := n.stores.Log.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("read raft log: %w", err)
	}
	if snaps, err := n.stores.Snapshots.List(); err == nil && len(snaps) > 0 {
		last = max(last, snaps[0].Index)
	}
	var out []string
	for _, name := range n.fsm.Names() {
		e, _ := n.fsm.Engine(name)
		if idx := e.AppliedIndex(); idx > last {
			out = append(out, fmt.Sprintf("storage %q holds state up to raft index %d but the raft log in %s ends at %d",
				name, idx, n.cfg.DataDir, last))
		}
	}
	return out, nil
}

// lastVoters returns the voters of the latest configuration in the raft
// log or, failing that, in the latest snapshot; none for a node without
// state.
func (n *Node) lastVoters() ([]string, error) {
	first, err := n.stores.Log.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("read raft log: %w", err)
	}
	last, err := n.stores.Log.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("read raft log: %w", err)
	}
	var cfg *raft.Configuration
	for i := last; i >= first && i > 0 && cfg == nil; i-- {
		var l raft.Log
		if err := n.stores.Log.GetLog(i, &l); err != nil {
			return nil, fmt.Errorf("read raft log entry %d: %w", i, err)
		}
		if l.Type == raft.LogConfiguration {
			c := raft.DecodeConfiguration(l.Data)
			cfg = &c
		}
	}
	if cfg == nil {
		if snaps, err := n.stores.Snapshots.List(); err == nil && len(snaps) > 0 {
			cfg = &snaps[0].Configuration
		}
	}
	var voters []string
	if cfg != nil {
		for _, s := range cfg.Servers {
			if s.Suffrage == raft.Voter {
				voters = append(voters, string(s.ID))
			}
		}
	}
	return voters, nil
}

// bootID is the current boot's id ("" where unknown: no detection).
func (n *Node) bootID() string {
	if n.opts.BootID != nil {
		return n.opts.BootID()
	}
	return linuxBootID()
}

// linuxBootID reads the current boot's id ("" where unknown).
func linuxBootID() string {
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readRunning(dir string) (running, bool) {
	b, err := os.ReadFile(filepath.Join(dir, runningFile))
	if err != nil {
		return running{}, false
	}
	var r running
	if json.Unmarshal(b, &r) != nil {
		return running{}, true
	}
	return r, true
}

func writeRunning(dir string, r running) error {
	b, _ := json.Marshal(r)
	path := filepath.Join(dir, runningFile)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("mark running: %w", err)
	}
	f, err := os.Open(path)
	if err == nil {
		err = f.Sync()
		_ = f.Close()
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("mark running: %w", err)
	}
	return nil
}

// syncEngines makes what the persistent engines applied durable.
func (n *Node) syncEngines() error {
	for _, name := range n.fsm.Names() {
		e, _ := n.fsm.Engine(name)
		if s, ok := e.(drivers.Syncer); ok {
			if err := s.Sync(); err != nil {
				return fmt.Errorf("storage %q: %w", name, err)
			}
		}
	}
	return nil
}

// markStopped records a clean stop: the raft log was closed in order.
func (n *Node) markStopped() {
	if err := os.Remove(filepath.Join(n.cfg.DataDir, runningFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		n.logger.Warn("could not record the clean stop", "err", err)
		return
	}
	_ = syncDir(n.cfg.DataDir)
}

// Quarantine moves aside, into dataDir/lost-<time>-<n>, what the error Open
// returned says cannot be trusted: for ErrRaftStateLost the raft state and
// identity in dataDir and every file in engineFiles, for ErrEnginesAhead
// and ErrEnginesTorn the engine files only. The engines must be closed. It returns the
// directory the files went to, which the operator may delete.
func Quarantine(dataDir string, engineFiles []string, cause error) (string, error) {
	var files []string
	switch {
	case errors.Is(cause, ErrRaftStateLost):
		files = append(files, eventlog.StateFiles(dataDir)...)
		files = append(files, filepath.Join(dataDir, identityFile), filepath.Join(dataDir, runningFile))
	case errors.Is(cause, ErrEnginesAhead), errors.Is(cause, ErrEnginesTorn):
	default:
		return "", fmt.Errorf("quarantine: %w", cause)
	}
	for _, f := range engineFiles {
		// With its side files (<file>.*): an engine opening would take
		// up, e.g. the live file an interrupted boltdb restore set aside.
		side, _ := filepath.Glob(f + ".*")
		files = append(append(files, f), side...)
	}
	// A directory of its own: two quarantines within a second (a torn
	// storage file, then lost raft state) keep both sets apart.
	dir, err := os.MkdirTemp(dataDir, "lost-"+time.Now().UTC().Format("20060102T150405Z")+"-")
	if err != nil {
		return "", fmt.Errorf("quarantine: %w", err)
	}
	for i, f := range files {
		if _, err := os.Lstat(f); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		to := filepath.Join(dir, fmt.Sprintf("%d-%s", i, filepath.Base(f)))
		if err := os.Rename(f, to); err != nil {
			return dir, fmt.Errorf("quarantine %s: %w", f, err)
		}
	}
	if err := syncDir(dataDir); err != nil {
		return dir, fmt.Errorf("quarantine: %w", err)
	}
	return dir, nil
}
