package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kvnode/kvnode/client"
	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/fsm"
	"github.com/kvnode/kvnode/fsm/backupfile"
	"github.com/kvnode/kvnode/rpc"
)

// snapshotWait bounds the calls that take as long as the state is large:
// the node taking the snapshot, and the cluster installing a restore.
const snapshotWait = 30 * time.Minute

const snapshotUsage = "save FILE [--rpc ADDR] [--token-file FILE] [--stale] | restore FILE [--rpc ADDR] [--token-file FILE] | inspect FILE"

// Snapshot is kvnode snapshot save|restore|inspect; version is the
// kvnode version the files it saves name.
func Snapshot(version string) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		sub := ""
		if len(args) > 0 {
			sub, args = args[0], args[1:]
		}
		switch sub {
		case "save":
			return runSnapshotSave(ctx, version, args, stdout, stderr)
		case "restore":
			return runSnapshotRestore(ctx, args, stdout, stderr)
		case "inspect":
			return runSnapshotInspect(args, stdout, stderr)
		case "-h", "-help", "--help", "help":
			fmt.Fprintln(stderr, "Usage: kvnode snapshot "+snapshotUsage)
			return flag.ErrHelp
		default:
			fmt.Fprintln(stderr, "Usage: kvnode snapshot "+snapshotUsage)
			return fmt.Errorf("%w: want save, restore or inspect, got %q", ErrUsage, sub)
		}
	}
}

// oneFile parses a subcommand's flags and its single FILE argument; flags
// may come before or after it.
func oneFile(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := parseVerbArgs(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		fs.Usage()
		return "", fmt.Errorf("%w: want exactly one FILE, got %d arguments", ErrUsage, len(pos))
	}
	return pos[0], nil
}

// runSnapshotSave downloads a consistent snapshot of every replicated
// storage into FILE (written to FILE.tmp, verified, then renamed).
func runSnapshotSave(ctx context.Context, version string, args []string, stdout, stderr io.Writer) (err error) {
	fs, af := newAdminFlagSet("snapshot save", "FILE [--rpc ADDR] [--token-file FILE] [--stale]", 30*time.Second, stderr)
	af.tokenFlags(fs)
	stale := fs.Bool("stale", false, "do not wait for the leader's commit index first (for a node cut off from its leader)")
	file, err := oneFile(fs, args)
	if err != nil {
		return err
	}
	if err := af.resolveToken(); err != nil {
		return err
	}
	c, err := af.dial(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	var open rpc.SnapshotOpenReply
	if err := af.call(ctx, c, rpc.MethodSnapshotOpen, rpc.SnapshotOpenArgs{AdminAuth: af.auth, Stale: *stale}, &open, snapshotWait); err != nil {
		return err
	}
	defer func() {
		if err != nil { // the session may still hold the snapshot open
			_ = af.call(context.WithoutCancel(ctx), c, rpc.MethodSnapshotClose, rpc.SnapshotCloseArgs{AdminAuth: af.auth, ID: open.ID}, nil, 0)
		}
	}()
	bw, err := backupfile.Create(file, backupfile.Meta{NodeID: open.NodeID, RaftIndex: open.Index, RaftTerm: open.Term,
		Size: open.Size, Created: time.Now().UTC().Truncate(time.Second), Version: version})
	if err != nil {
		return err
	}
	info, err := download(ctx, af, c, open, bw, newProgress(stderr, "saving", open.Size))
	if err != nil {
		bw.Abort()
		return err
	}
	if err := bw.Commit(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "saved %s: storages %s, %s, raft index %d (term %d) from node %s\n",
		file, strings.Join(info.Storages, ", "), humanBytes(open.Size), open.Index, open.Term, open.NodeID)
	return nil
}

// download reads the session's chunks into w, checking the stream's own
// checksum on the way.
func download(ctx context.Context, af *adminFlags, c *client.Client, open rpc.SnapshotOpenReply, w io.Writer, prog *progress) (fsm.SnapshotInfo, error) {
	pr, pw := io.Pipe()
	type verdict struct {
		info fsm.SnapshotInfo
		err  error
	}
	verified := make(chan verdict, 1)
	go func() {
		info, err := fsm.VerifySnapshot(pr)
		_, _ = io.Copy(io.Discard, pr) // never leave the writer blocked
		verified <- verdict{info, err}
	}()
	var off int64
	for {
		var r rpc.SnapshotReadReply
		if err := af.call(ctx, c, rpc.MethodSnapshotRead, rpc.SnapshotReadArgs{AdminAuth: af.auth, ID: open.ID, Offset: off}, &r, 0); err != nil {
			_ = pw.CloseWithError(err)
			prog.finish()
			return fsm.SnapshotInfo{}, err
		}
		if _, err := w.Write(r.Data); err != nil {
			_ = pw.CloseWithError(err)
			prog.finish()
			return fsm.SnapshotInfo{}, fmt.Errorf("write: %w", err)
		}
		_, _ = pw.Write(r.Data)
		off += int64(len(r.Data))
		prog.add(len(r.Data))
		if r.EOF || off > open.Size {
			break
		}
	}
	_ = pw.Close()
	prog.finish()
	v := <-verified
	switch {
	case off != open.Size:
		return v.info, fmt.Errorf("%w: received %d bytes of %d", backupfile.ErrNotIntact, off, open.Size)
	case v.err != nil:
		return v.info, fmt.Errorf("the node sent a damaged snapshot: %w", v.err)
	}
	return v.info, nil
}

// runSnapshotRestore verifies FILE, then streams it to the leader, which
// makes the whole cluster hold exactly its state.
func runSnapshotRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, af := newAdminFlagSet("snapshot restore", "FILE [--rpc ADDR] [--token-file FILE]", 30*time.Second, stderr)
	af.tokenFlags(fs)
	file, err := oneFile(fs, args)
	if err != nil {
		return err
	}
	if err := af.resolveToken(); err != nil {
		return err
	}
	prog := newProgress(stderr, "verifying", fileSize(file))
	b, err := backupfile.Open(file, prog.add)
	prog.finish()
	if err != nil {
		return err
	}
	defer func() { _ = b.Close() }()

	if af.rpc, err = restoreTarget(ctx, af, stderr); err != nil {
		return err
	}
	res, err := upload(ctx, af, b, stderr)
	if err != nil {
		return err
	}
	cleared := ""
	if len(res.Cleared) > 0 {
		cleared = "; emptied storages the backup did not hold: " + strings.Join(res.Cleared, ", ")
	}
	fmt.Fprintf(stdout, "restored %s: storages %s, %s, taken at index %d, now at raft index %d%s\n",
		file, strings.Join(res.Storages, ", "), humanBytes(res.Size), res.SourceIndex, res.Index, cleared)
	return nil
}

// restoreTarget decides where a restore goes: to the node --rpc names when
// it leads (or runs alone), else to the leader's RPC address as that node's
// status reports it from gossip, once the node found there confirms in its
// own status that it is that leader. A restore carries the whole state and
// the admin token, so it never goes to an address read from an error text.
func restoreTarget(ctx context.Context, af *adminFlags, stderr io.Writer) (string, error) {
	named := af.rpc
	st, err := nodeStatus(ctx, af, named)
	if err != nil {
		return "", err
	}
	if st.Role == cluster.RoleLeader || st.Role == cluster.RoleStandalone {
		return named, nil
	}
	if st.LeaderID == "" {
		return "", fmt.Errorf("%w: %s is a %s and knows no leader: retry once one is elected", cluster.ErrNotLeader, named, st.Role)
	}
	leader := ""
	for _, m := range st.Members {
		if m.ID == st.LeaderID {
			leader = DialableRPC(m.RPCAddress, m.Address)
		}
	}
	if leader == "" {
		return "", fmt.Errorf("%w: %s is a %s; the leader is %s (cluster address %s), whose RPC address this node "+
			"does not know (no gossip): run again with --rpc pointing at the leader", cluster.ErrNotLeader, named, st.Role,
			st.LeaderID, st.LeaderAddress)
	}
	lst, err := nodeStatus(ctx, af, leader)
	if err != nil {
		return "", fmt.Errorf("the leader %s, at %s per %s: %w", st.LeaderID, leader, named, err)
	}
	if lst.Role != cluster.RoleLeader || lst.NodeID != st.LeaderID {
		return "", fmt.Errorf("%w: %s names %s at %s as the leader, but that node is %s, a %s: retry",
			cluster.ErrNotLeader, named, st.LeaderID, leader, lst.NodeID, lst.Role)
	}
	fmt.Fprintf(stderr, "kvnode: %s is not the leader; sending the restore to the leader at %s\n", named, leader)
	return leader, nil
}

// nodeStatus asks the node at addr for its kvnode.Status.
func nodeStatus(ctx context.Context, af *adminFlags, addr string) (cluster.Status, error) {
	var st cluster.Status
	at := *af
	at.rpc = addr
	c, err := at.dial(ctx)
	if err != nil {
		return st, err
	}
	defer func() { _ = c.Close() }()
	err = at.call(ctx, c, rpc.MethodStatus, nil, &st, 0)
	return st, err
}

// upload runs one restore session against af.rpc.
func upload(ctx context.Context, af *adminFlags, b *backupfile.File, stderr io.Writer) (cluster.RestoreInfo, error) {
	var res cluster.RestoreInfo
	c, err := af.dial(ctx)
	if err != nil {
		return res, err
	}
	defer func() { _ = c.Close() }()
	var begin rpc.RestoreBeginReply
	if err := af.call(ctx, c, rpc.MethodRestoreBegin, rpc.RestoreBeginArgs{AdminAuth: af.auth, Size: b.Meta.Size}, &begin, 0); err != nil {
		return res, err
	}
	abort := func(err error) (cluster.RestoreInfo, error) {
		_ = af.call(context.WithoutCancel(ctx), c, rpc.MethodRestoreAbort, rpc.RestoreAbortArgs{AdminAuth: af.auth, ID: begin.ID}, nil, 0)
		return res, err
	}
	prog := newProgress(stderr, "restoring", b.Meta.Size)
	buf := make([]byte, max(min(begin.MaxChunk, rpc.MaxChunk), 1))
	src := b.Stream()
	var off int64
	for {
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			var w rpc.RestoreWriteReply
			args := rpc.RestoreWriteArgs{AdminAuth: af.auth, ID: begin.ID, Offset: off, Data: buf[:n]}
			if err := af.call(ctx, c, rpc.MethodRestoreWrite, args, &w, 0); err != nil {
				prog.finish()
				return abort(err)
			}
			off += int64(n)
			prog.add(n)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			prog.finish()
			return abort(fmt.Errorf("read backup: %w", rerr))
		}
	}
	prog.finish()
	err = af.call(ctx, c, rpc.MethodRestoreCommit, rpc.RestoreCommitArgs{AdminAuth: af.auth, ID: begin.ID, SHA256: b.StreamSum}, &res, snapshotWait)
	return res, err
}

// runSnapshotInspect verifies a backup file offline and describes it.
func runSnapshotInspect(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("snapshot inspect", "FILE", stderr)
	file, err := oneFile(fs, args)
	if err != nil {
		return err
	}
	b, err := backupfile.Open(file, nil)
	if err != nil {
		return err
	}
	defer func() { _ = b.Close() }()
	m := b.Meta
	fmt.Fprintf(stdout, "file        %s (intact: SHA-256 and stream checksum verified)\n", file)
	fmt.Fprintf(stdout, "taken from  node %s at raft index %d, term %d\n", m.NodeID, m.RaftIndex, m.RaftTerm)
	fmt.Fprintf(stdout, "created     %s by kvnode %s\n", m.Created.Format(time.RFC3339), m.Version)
	fmt.Fprintf(stdout, "size        %s\n", humanBytes(m.Size))
	fmt.Fprintf(stdout, "storages    %s\n", strings.Join(b.Info.Storages, ", "))
	return nil
}
