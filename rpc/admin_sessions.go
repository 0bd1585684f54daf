package rpc

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Session limits of the admin service.
const (
	// adminIdle closes a snapshot or restore session nobody has used for
	// this long (a client that died mid-transfer).
	adminIdle = 2 * time.Minute
	// maxSnapshotSessions bounds concurrent backup downloads: each holds
	// a snapshot file open.
	maxSnapshotSessions = 4
	// frameHeadroom is left free in a RestoreWrite frame for the method
	// name and the encoding around the chunk.
	frameHeadroom = 4 << 10
)

// adminState serves the kvnode service and owns its sessions.
type adminState struct {
	admin    Admin
	logger   *slog.Logger
	base     context.Context
	maxChunk int
	// tokenSum is the SHA-256 of Config.AdminToken, nil without one.
	// Comparing digests keeps the comparison constant-time whatever the
	// length of the token presented.
	tokenSum []byte
	refusals throttle

	mu      sync.Mutex
	snaps   map[string]*snapSession
	restore *restoreSession // at most one at a time
}

func newAdminState(a Admin, base context.Context, maxFrame int, token string, logger *slog.Logger) *adminState {
	st := &adminState{
		admin:    a,
		logger:   logger,
		base:     base,
		maxChunk: max(min(MaxChunk, maxFrame-frameHeadroom), 1),
		snaps:    map[string]*snapSession{},
		refusals: throttle{every: refusalLogEvery},
	}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		st.tokenSum = sum[:]
	}
	// Sessions end with the server: snapshot files are closed and a
	// restore that has not committed is abandoned.
	context.AfterFunc(base, st.closeAll)
	return st
}

// authorize checks the token a call presented.
func (a *adminState) authorize(method, token string) error {
	if a.tokenSum == nil {
		return nil
	}
	if token == "" {
		return reply(ErrUnauthorized, method+": "+ErrUnauthorized.Error()+
			": this server has rpc.admin_token set; give the kvnode CLI --token or KVNODE_ADMIN_TOKEN"+
			" (a client that predates admin tokens sends none)")
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], a.tokenSum) != 1 {
		return reply(ErrUnauthorized, method+": "+ErrUnauthorized.Error()+": the token does not match rpc.admin_token")
	}
	return nil
}

func newSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// snapSession is one backup download.
type snapSession struct {
	mu     sync.Mutex
	rc     io.ReadCloser
	off    int64
	closed bool
	timer  *time.Timer
}

func (s *snapSession) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.timer.Stop()
		_ = s.rc.Close()
	}
}

func (a *adminState) snapshotOpen(ctx context.Context, args SnapshotOpenArgs, remote string) (SnapshotOpenReply, error) {
	a.mu.Lock()
	n := len(a.snaps)
	a.mu.Unlock()
	if n >= maxSnapshotSessions {
		return SnapshotOpenReply{}, fmt.Errorf("%w: %d backup downloads already running", ErrAdminBusy, n)
	}
	info, rc, err := a.admin.Snapshot(ctx, args.Stale)
	if err != nil {
		return SnapshotOpenReply{}, err // prefixed with the method by serveAdmin
	}
	id := newSessionID()
	s := &snapSession{rc: rc}
	s.timer = time.AfterFunc(adminIdle, func() {
		a.logger.Warn("rpc: backup download idle too long: closed", "session", id)
		a.dropSnap(id)
	})
	a.mu.Lock()
	a.snaps[id] = s
	a.mu.Unlock()
	info.ID = id
	a.logger.Info("rpc: admin: backup download opened", "session", id, "remote", remote,
		"index", info.Index, "bytes", info.Size, "stale", args.Stale)
	return info, nil
}

func (a *adminState) dropSnap(id string) {
	a.mu.Lock()
	s := a.snaps[id]
	delete(a.snaps, id)
	a.mu.Unlock()
	if s != nil {
		s.close()
	}
}

func (a *adminState) snapshotRead(args SnapshotReadArgs, remote string) (SnapshotReadReply, error) {
	a.mu.Lock()
	s := a.snaps[args.ID]
	a.mu.Unlock()
	if s == nil {
		return SnapshotReadReply{}, ErrAdminSession
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return SnapshotReadReply{}, ErrAdminSession
	}
	if args.Offset != s.off {
		off := s.off
		s.mu.Unlock()
		a.dropSnap(args.ID)
		return SnapshotReadReply{}, fmt.Errorf("%w: client at %d, server at %d", ErrAdminOffset, args.Offset, off)
	}
	s.timer.Reset(adminIdle)
	buf := make([]byte, MaxChunk)
	n, err := io.ReadFull(s.rc, buf)
	s.off += int64(n)
	s.mu.Unlock()
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		a.dropSnap(args.ID)
		a.logger.Info("rpc: admin: backup download complete", "session", args.ID, "remote", remote,
			"bytes", args.Offset+int64(n))
		return SnapshotReadReply{Data: buf[:n], EOF: true}, nil
	case err != nil:
		a.dropSnap(args.ID)
		return SnapshotReadReply{}, fmt.Errorf("read snapshot: %w", err)
	}
	return SnapshotReadReply{Data: buf[:n]}, nil
}

func (a *adminState) snapshotClose(id string) error {
	a.mu.Lock()
	_, ok := a.snaps[id]
	a.mu.Unlock()
	if !ok {
		return ErrAdminSession
	}
	a.dropSnap(id)
	return nil
}

// restoreSession streams a backup into Admin.Restore through a pipe: each
// RestoreWrite blocks until Restore has taken its chunk.
type restoreSession struct {
	id     string
	pw     *io.PipeWriter
	done   chan struct{} // closed when Restore has returned
	res    any
	err    error
	cancel context.CancelFunc

	mu         sync.Mutex
	sum        hash.Hash
	written    int64
	size       int64
	committing bool
	timer      *time.Timer
}

func (a *adminState) restoreBegin(args RestoreBeginArgs, remote string) (RestoreBeginReply, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.restore != nil {
		return RestoreBeginReply{}, fmt.Errorf("%w: another restore is running", ErrAdminBusy)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(a.base, adminLongTimeout)
	s := &restoreSession{id: newSessionID(), pw: pw, done: make(chan struct{}), cancel: cancel,
		sum: sha256.New(), size: args.Size}
	s.timer = time.AfterFunc(adminIdle, func() {
		a.logger.Warn("rpc: restore idle too long: aborted", "session", s.id)
		a.abort(s, fmt.Errorf("%w: idle for %s", ErrRestoreAborted, adminIdle))
	})
	a.restore = s
	a.logger.Info("rpc: admin: restore started", "session", s.id, "remote", remote, "bytes", args.Size)
	go func() {
		defer cancel()
		res, err := a.admin.Restore(ctx, pr)
		if err == nil {
			err = io.ErrClosedPipe // writes after a finished restore fail
		} else {
			s.err = err
		}
		_ = pr.CloseWithError(err)
		s.res = res
		close(s.done)
	}()
	return RestoreBeginReply{ID: s.id, MaxChunk: a.maxChunk}, nil
}

// session returns the running restore named id.
func (a *adminState) session(id string) *restoreSession {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.restore == nil || a.restore.id != id {
		return nil
	}
	return a.restore
}

// abort ends s with cause unless it is committing, and forgets it.
func (a *adminState) abort(s *restoreSession, cause error) {
	s.mu.Lock()
	committing := s.committing
	s.mu.Unlock()
	if committing {
		return
	}
	_ = s.pw.CloseWithError(cause)
	a.forget(s)
}

// forget drops s once its Restore has returned (it reads until the pipe
// fails, so that is soon after an abort): at once when it has, so that a
// client told its restore is over may begin the next one straight away.
func (a *adminState) forget(s *restoreSession) {
	s.timer.Stop()
	drop := func() {
		a.mu.Lock()
		if a.restore == s {
			a.restore = nil
		}
		a.mu.Unlock()
	}
	select {
	case <-s.done:
		drop()
	default:
		go func() {
			<-s.done
			drop()
		}()
	}
}

func (a *adminState) restoreWrite(args RestoreWriteArgs) (RestoreWriteReply, error) {
	s := a.session(args.ID)
	if s == nil {
		return RestoreWriteReply{}, ErrAdminSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committing {
		return RestoreWriteReply{}, ErrAdminSession
	}
	if args.Offset != s.written {
		return RestoreWriteReply{}, fmt.Errorf("%w: client at %d, server at %d", ErrAdminOffset, args.Offset, s.written)
	}
	if s.size > 0 && s.written+int64(len(args.Data)) > s.size {
		return RestoreWriteReply{}, fmt.Errorf("%w: more than the %d bytes announced", ErrAdminOffset, s.size)
	}
	s.timer.Reset(adminIdle)
	if _, err := s.pw.Write(args.Data); err != nil {
		// Restore gave up (or the session was aborted): say why.
		<-s.done
		a.forget(s)
		if s.err != nil {
			return RestoreWriteReply{}, s.err
		}
		return RestoreWriteReply{}, fmt.Errorf("%w: %w", ErrRestoreAborted, err)
	}
	s.sum.Write(args.Data)
	s.written += int64(len(args.Data))
	return RestoreWriteReply{Written: s.written}, nil
}

func (a *adminState) restoreCommit(ctx context.Context, args RestoreCommitArgs, remote string) (res any, err error) {
	s := a.session(args.ID)
	if s == nil {
		return nil, ErrAdminSession
	}
	s.mu.Lock()
	if s.committing {
		s.mu.Unlock()
		return nil, ErrAdminSession
	}
	s.committing = true
	s.timer.Stop()
	var bad error
	switch got := s.sum.Sum(nil); {
	case s.size > 0 && s.written != s.size:
		bad = fmt.Errorf("%w: %d bytes received, %d announced", ErrRestoreChecksum, s.written, s.size)
	case !bytes.Equal(got, args.SHA256):
		bad = fmt.Errorf("%w: received %x, client sent %x", ErrRestoreChecksum, got, args.SHA256)
	}
	s.mu.Unlock()
	if bad != nil {
		_ = s.pw.CloseWithError(bad)
	} else {
		_ = s.pw.Close()
	}
	defer a.forget(s)
	defer func() {
		if err != nil {
			a.logger.Warn("rpc: admin: restore failed", "session", s.id, "remote", remote, "err", err)
			return
		}
		a.logger.Info("rpc: admin: restore committed", "session", s.id, "remote", remote, "bytes", s.written)
	}()
	select {
	case <-s.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("restore still running after %w; check kvnode status", ctx.Err())
	}
	if bad != nil {
		return nil, bad
	}
	return s.res, s.err
}

func (a *adminState) restoreAbort(id, remote string) error {
	s := a.session(id)
	if s == nil {
		return ErrAdminSession
	}
	a.logger.Info("rpc: admin: restore aborted by the client", "session", id, "remote", remote)
	a.abort(s, ErrRestoreAborted)
	return nil
}

// closeAll ends every session when the server shuts down.
func (a *adminState) closeAll() {
	a.mu.Lock()
	ids := make([]string, 0, len(a.snaps))
	for id := range a.snaps {
		ids = append(ids, id)
	}
	s := a.restore
	a.mu.Unlock()
	for _, id := range ids {
		a.dropSnap(id)
	}
	if s != nil {
		a.abort(s, fmt.Errorf("%w: server shutting down", ErrRestoreAborted))
		s.cancel()
	}
}
