package rpc

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/roadrunner-server/goridge/v3/pkg/frame"
)

// AdminService is the service name of kvnode's own methods (status,
// health, backups), served on the kv port next to RoadRunner's "kv".
const AdminService = "kvnode"

// Admin methods, as clients name them.
const (
	MethodStatus        = AdminService + ".Status"
	MethodHealth        = AdminService + ".Health"
	MethodSnapshotOpen  = AdminService + ".SnapshotOpen"
	MethodSnapshotRead  = AdminService + ".SnapshotRead"
	MethodSnapshotClose = AdminService + ".SnapshotClose"
	MethodRestoreBegin  = AdminService + ".RestoreBegin"
	MethodRestoreWrite  = AdminService + ".RestoreWrite"
	MethodRestoreCommit = AdminService + ".RestoreCommit"
	MethodRestoreAbort  = AdminService + ".RestoreAbort"
	MethodEvents        = AdminService + ".Events"
)

// MaxChunk is the most snapshot data one SnapshotRead reply or
// RestoreWrite request carries, so that frames stay far below the default
// max_frame_size. RestoreBegin tells the client a smaller limit when the
// server's MaxFrameSize requires one.
const MaxChunk = 1 << 20

// Admin is what the kvnode service calls. The command wires it: a cluster
// node or a standalone server. Values returned as any are encoded with the
// request's codec (gob for goridge's Go client, or JSON).
type Admin interface {
	// Status describes the node (cluster.Status).
	Status(ctx context.Context) (any, error)
	// Health says whether the node is ready to take traffic.
	Health(ctx context.Context) (HealthReply, error)
	// Snapshot opens a consistent snapshot of the replicated storages; the
	// server reads it out in chunks and closes it.
	Snapshot(ctx context.Context, stale bool) (SnapshotOpenReply, io.ReadCloser, error)
	// Restore replaces the replicated state with the snapshot stream r,
	// read to its end, and describes the result (cluster.RestoreInfo). If
	// r fails, Restore must change nothing and return an error.
	Restore(ctx context.Context, r io.Reader) (any, error)
	// Events returns a page of the decoded event log
	// (cluster.EventsPage), waiting up to args.Wait (within ctx) for
	// events past args.Since.
	Events(ctx context.Context, args EventsArgs) (any, error)
}

// HealthReply answers kvnode.Health.
type HealthReply struct {
	NodeID string
	Role   string
	// Ready is true when the node knows a leader and has caught up with
	// it (always, for a standalone node); Reason says why not.
	Ready  bool
	Reason string
}

// AdminAuth carries the admin token. Every argument type of the calls that
// export or replace data embeds it; Status and Health take no arguments and
// need no token.
//
// The token travels inside the arguments because goridge frames have no
// room for credentials: gob ignores a field the receiver lacks, so an older
// server simply ignores it, and an older client that sends none is told
// "admin token required" by a server that has one.
type AdminAuth struct {
	// Token is the server's rpc.admin_token; empty when it has none.
	Token string
}

func (a AdminAuth) adminToken() string { return a.Token }

// authArgs are arguments that carry an AdminAuth.
type authArgs interface{ adminToken() string }

// SnapshotOpenArgs asks for a backup snapshot.
type SnapshotOpenArgs struct {
	AdminAuth
	// Stale skips waiting for the leader's commit index: for a node cut off
	// from its leader.
	Stale bool
}

// SnapshotOpenReply describes an opened snapshot.
type SnapshotOpenReply struct {
	// ID names the session for SnapshotRead and SnapshotClose.
	ID     string
	NodeID string
	Index  uint64
	Term   uint64
	// Size is the length of the stream in bytes.
	Size int64
}

// SnapshotReadArgs asks for the next chunk of a snapshot.
type SnapshotReadArgs struct {
	AdminAuth
	ID string
	// Offset is how much the client has read: a mismatch is an error, so a
	// lost or repeated reply cannot go unnoticed.
	Offset int64
}

// SnapshotReadReply carries up to MaxChunk bytes; EOF marks the last
// chunk, after which the session is closed.
type SnapshotReadReply struct {
	Data []byte
	EOF  bool
}

// SnapshotCloseArgs ends a snapshot session early.
type SnapshotCloseArgs struct {
	AdminAuth
	ID string
}

// RestoreBeginArgs starts a restore of Size bytes.
type RestoreBeginArgs struct {
	AdminAuth
	Size int64
}

// RestoreBeginReply names the restore session and the largest chunk a
// RestoreWrite may carry.
type RestoreBeginReply struct {
	ID       string
	MaxChunk int
}

// RestoreWriteArgs sends the chunk at Offset.
type RestoreWriteArgs struct {
	AdminAuth
	ID     string
	Offset int64
	Data   []byte
}

// RestoreWriteReply says how much the server has taken so far.
type RestoreWriteReply struct{ Written int64 }

// RestoreCommitArgs ends the stream and waits for the restore. SHA256 is
// the digest of everything written: a mismatch aborts the restore.
type RestoreCommitArgs struct {
	AdminAuth
	ID     string
	SHA256 []byte
}

// RestoreAbortArgs abandons a restore before it commits; nothing changes.
type RestoreAbortArgs struct {
	AdminAuth
	ID string
}

// EventsArgs asks for the events from Since on (kvnode events). Events
// name keys, so the call needs the token.
type EventsArgs struct {
	AdminAuth
	// Since is the first log index wanted; 0 means the oldest still held.
	Since uint64
	// Storage keeps only that storage's events ("" = all).
	Storage string
	// Max bounds the events in the reply (the server caps it too).
	Max int
	// Wait is how long the server may wait for a new event before
	// answering with none: a blocking query. It is cut to leave the
	// request deadline room.
	Wait time.Duration
}

// maxEventsWait bounds a blocking Events call below any sane client
// timeout.
const maxEventsWait = 10 * time.Second

// ackReply answers calls that return nothing else.
type ackReply struct{ OK bool }

// adminMethod identifies a method of the kvnode service.
type adminMethod uint8

const (
	aNone adminMethod = iota
	aStatus
	aHealth
	aSnapshotOpen
	aSnapshotRead
	aSnapshotClose
	aRestoreBegin
	aRestoreWrite
	aRestoreCommit
	aRestoreAbort
	aEvents
)

// open reports the methods anyone who reaches the port may call: they
// describe the node and neither export nor change data. Every other method,
// including any added later, needs the token when the server has one.
func (m adminMethod) open() bool { return m == aStatus || m == aHealth }

// chunk reports the calls repeated for every MiB of a transfer, or every
// few seconds by `kvnode events --follow`, logged at debug level only; a
// transfer's first and last calls are logged at info.
func (m adminMethod) chunk() bool { return m == aSnapshotRead || m == aRestoreWrite || m == aEvents }

var adminMethods = map[string]adminMethod{
	MethodStatus:        aStatus,
	MethodHealth:        aHealth,
	MethodSnapshotOpen:  aSnapshotOpen,
	MethodSnapshotRead:  aSnapshotRead,
	MethodSnapshotClose: aSnapshotClose,
	MethodRestoreBegin:  aRestoreBegin,
	MethodRestoreWrite:  aRestoreWrite,
	MethodRestoreCommit: aRestoreCommit,
	MethodRestoreAbort:  aRestoreAbort,
	MethodEvents:        aEvents,
}

// adminLongTimeout bounds the calls that may take as long as the state is
// large: taking a snapshot and committing a restore.
const adminLongTimeout = 30 * time.Minute

// decodeAdmin claims a request for the kvnode service when an Admin is
// configured: it records the method and keeps a copy of the body (the frame
// buffer is reused). It returns false for names of other services.
func (s *Server) decodeAdmin(req *request, name, body []byte) bool {
	if s.admin == nil || !bytes.HasPrefix(name, []byte(AdminService+".")) {
		return false
	}
	m, ok := adminMethods[string(name)]
	if !ok {
		req.err = reply(ErrUnknownMethod, "rpc: can't find method "+req.unknown)
		return true
	}
	req.admin = m
	req.body = bytes.Clone(body)
	return true
}

// processAdmin serves one kvnode.* request and writes its reply.
func (c *conn) processAdmin(req *request) {
	defer putRequest(req)
	start := time.Now()
	body, err := c.serveAdmin(req)
	elapsed := time.Since(start)
	if obs := c.s.cfg.Observer; obs != nil {
		obs.ObserveCall(req.unknown, "", elapsed, err)
	}
	c.logAdmin(req, elapsed, err)
	var text string
	if err != nil {
		text = err.Error()
	}
	n := headerLen + len(req.unknown) + len(body) + len(text)
	if !c.reserve(n) {
		return
	}
	defer c.release(n)
	b := make([]byte, headerLen, n)
	b = append(b, req.unknown...)
	flags := req.codec
	if err != nil {
		b = append(b, text...)
		flags |= frame.ERROR
	} else {
		b = append(b, body...)
	}
	putHeader(b[:headerLen], flags, uint32(len(b)-headerLen), req.seq, uint32(len(req.unknown)))
	c.write(b)
}

// logAdmin records every admin call with the client's address: those that
// export or replace data at info level (warn when refused for the token,
// throttled so that guessing cannot flood the log), status, health and
// transfer chunks at debug level.
func (c *conn) logAdmin(req *request, elapsed time.Duration, err error) {
	attrs := []any{"method", req.unknown, "remote", c.remote, "elapsed", elapsed}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	switch {
	case errors.Is(err, ErrUnauthorized):
		if n, ok := c.s.admin.refusals.note(time.Now()); ok {
			c.s.logger.Warn("rpc: admin call refused", append(attrs, "refused", n)...)
		}
	case req.admin.open() || req.admin.chunk():
		c.s.logger.Debug("rpc: admin call", attrs...)
	default:
		c.s.logger.Info("rpc: admin call", attrs...)
	}
}

func (c *conn) serveAdmin(req *request) (body []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.s.logger.Error("rpc: panic serving an admin request", "remote", c.remote,
				"method", req.unknown, "panic", p, "stack", string(debug.Stack()))
			body, err = nil, reply(ErrInternal, req.unknown+": "+ErrInternal.Error())
		}
	}()
	if req.codec != frame.CodecGob && req.codec != frame.CodecJSON {
		return nil, reply(ErrCodec, fmt.Sprintf(
			"rpc: unsupported codec (flags 0x%02x): %s accepts gob (0x%02x) or JSON (0x%02x)",
			req.codec, AdminService, frame.CodecGob, frame.CodecJSON))
	}
	timeout := c.s.cfg.RequestTimeout
	if req.admin == aSnapshotOpen || req.admin == aRestoreCommit {
		timeout = max(timeout, adminLongTimeout)
	}
	ctx, cancel := context.WithTimeout(c.s.base, timeout)
	defer cancel()
	res, err := c.s.admin.call(ctx, req, c.remote)
	if err != nil {
		return nil, adminError(req.unknown, err)
	}
	return encodeAdmin(req.codec, res)
}

// adminError prefixes an error with the method, keeping it for errors.Is.
func adminError(method string, err error) error {
	var re *replyError
	if errors.As(err, &re) {
		return err
	}
	return reply(err, method+": "+err.Error())
}

// decodeArgs decodes a request body into args; an empty body leaves args
// at its zero value (goridge's client sends none for nil args).
func decodeArgs(req *request, args any) error {
	if len(req.body) == 0 {
		return nil
	}
	var err error
	if req.codec == frame.CodecJSON {
		err = json.Unmarshal(req.body, args)
	} else {
		err = gob.NewDecoder(bytes.NewReader(req.body)).Decode(args)
	}
	if err != nil {
		return reply(ErrDecode, req.unknown+": undecodable arguments: "+err.Error())
	}
	return nil
}

func encodeAdmin(codec byte, v any) ([]byte, error) {
	if v == nil {
		v = ackReply{OK: true}
	}
	if codec == frame.CodecJSON {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("rpc: encode reply: %w", err)
		}
		return b, nil
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		return nil, fmt.Errorf("rpc: encode reply: %w", err)
	}
	return buf.Bytes(), nil
}

// args decodes the arguments of a call that needs the token, then checks
// the token.
func (a *adminState) args(req *request, args authArgs) error {
	if err := decodeArgs(req, args); err != nil {
		return err
	}
	return a.authorize(req.unknown, args.adminToken())
}

// call dispatches a decoded admin request from remote.
func (a *adminState) call(ctx context.Context, req *request, remote string) (any, error) {
	switch req.admin {
	case aStatus:
		return a.admin.Status(ctx)
	case aHealth:
		return a.admin.Health(ctx)
	case aSnapshotOpen:
		var args SnapshotOpenArgs
		if err := a.args(req, &args); err != nil {
			return nil, err
		}
		return a.snapshotOpen(ctx, args, remote)
	case aSnapshotRead:
		var args SnapshotReadArgs
		if err := a.args(req, &args); err != nil {
			return nil, err
		}
		return a.snapshotRead(args, remote)
	case aSnapshotClose:
		var args SnapshotCloseArgs
		if err := a.args(req, &args); err != nil {
			return nil, err
		}
		return nil, a.snapshotClose(args.ID)
	case aRestoreBegin:
		var args RestoreBeginArgs
		if err := a.args(req, &args); err != nil {
			return nil, err
		}
		return a.restoreBegin(args, remote)
	case aRestoreWrite:
		var args RestoreWriteArgs
		if err := a.args(req, &args); err != nil {
			return nil, err
		}
		return a.restoreWrite(args)
	case aRestoreCommit:
		var args RestoreCommitArgs
		if err := a.args(req, &args); err != nil {
			return nil, err
		}
		return a.restoreCommit(ctx, args, remote)
	case aRestoreAbort:
		var args RestoreAbortArgs
		if err := a.args(req, &args); err != nil {
			return nil, err
		}
		return nil, a.restoreAbort(args.ID, remote)
	case aEvents:
		var args EventsArgs
		if err := a.args(req, &args); err != nil {
			return nil, err
		}
		args.Wait = min(args.Wait, maxEventsWait)
		if d, ok := ctx.Deadline(); ok {
			args.Wait = max(min(args.Wait, time.Until(d)-time.Second), 0)
		}
		return a.admin.Events(ctx, args)
	}
	return nil, fmt.Errorf("%w %s", ErrUnknownMethod, req.unknown)
}
