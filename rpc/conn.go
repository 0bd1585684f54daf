package rpc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roadrunner-server/goridge/v3/pkg/frame"
)

// readBufSize is the per-connection read buffer. Frames up to this size are
// decoded in place, without being copied out of it.
const readBufSize = 16 << 10

// maxPooledReply is the largest reply buffer kept for reuse; bigger ones
// (large MGet answers) are left to the GC.
const maxPooledReply = 256 << 10

// errDraining ends a connection's read loop when the server shuts down.
var errDraining = errors.New("rpc: server shutting down")

// conn serves one client connection: a single reader goroutine decodes
// frames and either serves each request itself (inline storages, errors)
// or hands it to a goroutine, so requests run concurrently and replies go
// out in completion order, matched by sequence id.
type conn struct {
	s      *Server
	nc     net.Conn
	br     *bufio.Reader
	remote string

	raw      *rawWriter // nil if nc has no descriptor: every write waits under the deadline
	wmu      sync.Mutex // serialises reply frames and guards raw
	inflight sync.WaitGroup
	sem      chan struct{} // bounds requests in flight
	// work hands a request to an idle worker (unbuffered: only one that
	// waits takes it); done, closed when the read loop ends, sends idle
	// workers home.
	work     chan *request
	done     chan struct{}
	deadline bool // a read deadline is set on nc
	inFrame  bool // the deadline set is the current frame's

	// backlog counts the bytes of replies reserved and not yet written:
	// reserve waits while it is full, and the reader stops reading
	// requests. The counters are atomic so that the common case (room to
	// spare) takes no lock; whoever must wait sleeps on bcond, and
	// whoever frees room wakes the sleepers, if any.
	backlog  atomic.Int64
	waiting  atomic.Int32 // replies waiting in reserve for room
	sleepers atomic.Int32 // goroutines asleep on bcond
	broken   atomic.Bool  // a write failed: nothing more can be sent
	bmu      sync.Mutex
	bcond    sync.Cond
}

func (s *Server) newConn(nc net.Conn) *conn {
	remote := s.network
	if a := nc.RemoteAddr(); a != nil && a.String() != "" {
		remote = a.String()
	}
	c := &conn{
		s:      s,
		nc:     nc,
		br:     bufio.NewReaderSize(nc, readBufSize),
		remote: remote,
		sem:    make(chan struct{}, s.cfg.MaxInFlight),
		work:   make(chan *request),
		done:   make(chan struct{}),
		raw:    newRawWriter(nc),
	}
	c.bcond.L = &c.bmu
	return c
}

// serve runs the read loop, then lets the requests in flight finish and
// closes the connection.
func (c *conn) serve() {
	defer c.s.untrack(c)
	err := c.readLoop()
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, errDraining), errors.Is(err, net.ErrClosed):
		c.s.logger.Debug("rpc: connection closed", "remote", c.remote)
	case errors.Is(err, ErrFrameTooLarge):
		c.s.logger.Warn("rpc: closing connection", "remote", c.remote, "err", err,
			"max_frame_size", c.s.cfg.MaxFrameSize)
	default:
		c.s.logger.Warn("rpc: closing connection", "remote", c.remote, "err", err)
	}
	close(c.done)
	c.inflight.Wait()
	_ = c.nc.Close()
}

// stopReading makes a blocked read return at once; the read loop then sees
// the server draining and stops.
func (c *conn) stopReading() { _ = c.nc.SetReadDeadline(time.Unix(1, 0)) }

func (c *conn) readLoop() (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.s.logger.Error("rpc: panic reading a request", "remote", c.remote,
				"panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", ErrInternal, p)
		}
	}()
	for {
		if err := c.waitBacklog(); err != nil {
			return err
		}
		req, err := c.readRequest()
		if err != nil {
			return err
		}
		c.dispatch(req)
	}
}

// dispatch serves req on the reader goroutine when that cannot block (an
// error reply, an inline storage or a read its storage says is ready),
// else hands it to a worker: an idle one if the connection has one, else
// a new one.
func (c *conn) dispatch(req *request) {
	if req.err != nil || req.admin == aNone && (req.st == nil || req.st.inlineFor(req.m)) {
		c.process(req)
		return
	}
	c.sem <- struct{}{}
	c.inflight.Add(1)
	select {
	case c.work <- req:
	default:
		go c.worker(req)
	}
}

// workerIdle is how long a connection's worker waits for another request
// before it exits.
const workerIdle = 10 * time.Second

// worker serves req, then the requests the reader hands it, until it has
// waited workerIdle for one or the connection stops reading. Workers
// outlive their requests because a replicated storage's call path is deep
// enough to grow a new goroutine's stack: a goroutine per request spent an
// eighth of a follower's CPU copying stacks under 64 readers. At most
// MaxInFlight workers serve a connection, as many as were busy at once.
func (c *conn) worker(req *request) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		c.process(req)
		<-c.sem
		c.inflight.Done()
		idle.Reset(workerIdle)
		select {
		case req = <-c.work:
		case <-idle.C:
			return
		case <-c.done:
			return
		}
	}
}

// readRequest reads and decodes one frame. Every header field is checked
// before the payload is waited for or buffered: a frame goridge's codec
// would choke on closes the connection instead.
func (c *conn) readRequest() (*request, error) {
	c.inFrame = false
	b, err := c.peek(baseHeaderLen, true)
	if err != nil {
		return nil, err
	}
	flags, plen, err := checkBase(b, c.s.cfg.MaxFrameSize)
	if err != nil {
		return nil, fmt.Errorf("%w (header % x)", err, b)
	}
	if b, err = c.peek(headerLen, false); err != nil {
		return nil, err
	}
	seq := binary.LittleEndian.Uint32(b[12:16])
	mlen := binary.LittleEndian.Uint32(b[16:20])
	if mlen > plen {
		return nil, fmt.Errorf("%w (method length %d, payload %d)", ErrFrameMethod, mlen, plen)
	}
	_, _ = c.br.Discard(headerLen)

	n := int(plen)
	var payload []byte
	inBuf := n <= c.br.Size()
	if inBuf {
		payload, err = c.peek(n, false)
	} else {
		payload = make([]byte, n)
		_, err = io.ReadFull(deadlineReader{c}, payload)
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = ErrFrameTruncated
		}
	}
	if err != nil {
		return nil, err
	}

	req := getRequest()
	req.seq = seq
	req.codec = pickCodec(flags)
	name := payload[:mlen]
	if req.m = lookupMethod(name); req.m == mUnknown {
		req.unknown = echoName(name)
		if !c.s.decodeAdmin(req, name, payload[mlen:]) {
			req.err = errMethod(name)
		}
	} else if err := decodeBody(payload[mlen:], req, c.s.storages, c.s.cfg.MaxItems); err != nil {
		req.err = err
	}
	if inBuf {
		_, _ = c.br.Discard(n)
	}
	return req, nil
}

// peek returns the next n buffered bytes, reading as needed. Deadlines are
// only touched when a read has to block: IdleTimeout while waiting for the
// first byte of a frame, then FrameTimeout for all the rest of it.
func (c *conn) peek(n int, frameStart bool) ([]byte, error) {
	if c.br.Buffered() >= n {
		return c.br.Peek(n)
	}
	if frameStart && c.br.Buffered() == 0 {
		if err := c.armIdle(); err != nil {
			return nil, err
		}
		if _, err := c.br.Peek(1); err != nil {
			return nil, c.readErr(err, true)
		}
		if c.br.Buffered() >= n {
			return c.br.Peek(n)
		}
	}
	if err := c.armFrame(); err != nil {
		return nil, err
	}
	b, err := c.br.Peek(n)
	if err != nil {
		return nil, c.readErr(err, false)
	}
	return b, nil
}

// armIdle sets the read deadline for the wait between frames: IdleTimeout,
// or none. It checks for shutdown after setting it, so a deadline set here
// can never override the one Shutdown set to wake this reader.
func (c *conn) armIdle() error {
	switch timeout := c.s.cfg.IdleTimeout; {
	case timeout > 0:
		_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
		c.deadline = true
	case c.deadline:
		_ = c.nc.SetReadDeadline(time.Time{})
		c.deadline = false
	}
	if c.s.draining.Load() {
		return errDraining
	}
	return nil
}

// armFrame sets the deadline for the rest of the current frame, once: it
// is a deadline for the whole frame, which bytes trickling in one at a
// time cannot push back.
func (c *conn) armFrame() error {
	if !c.inFrame {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.FrameTimeout))
		c.deadline, c.inFrame = true, true
	}
	if c.s.draining.Load() {
		return errDraining
	}
	return nil
}

func (c *conn) readErr(err error, between bool) error {
	if c.s.draining.Load() {
		return errDraining
	}
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		if between {
			return fmt.Errorf("idle for %s: %w", c.s.cfg.IdleTimeout, os.ErrDeadlineExceeded)
		}
		return fmt.Errorf("%w: frame not complete after %s (rpc.frame_timeout)", ErrFrameTruncated, c.s.cfg.FrameTimeout)
	}
	if errors.Is(err, io.EOF) && !between {
		return ErrFrameTruncated
	}
	return err
}

// deadlineReader reads a large payload under the frame's deadline.
type deadlineReader struct{ c *conn }

func (d deadlineReader) Read(p []byte) (int, error) {
	if d.c.br.Buffered() == 0 {
		if err := d.c.armFrame(); err != nil {
			return 0, err
		}
	}
	n, err := d.c.br.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = d.c.readErr(err, false)
	}
	return n, err
}

// process serves req and writes its reply.
func (c *conn) process(req *request) {
	if req.admin != aNone && req.err == nil {
		c.processAdmin(req)
		return
	}
	defer putRequest(req)
	res, err := c.serveRequest(req)
	n, err := c.s.replySize(req, res, err)
	if !c.reserve(n) {
		return
	}
	bp := getBuf()
	*bp = c.s.appendReply((*bp)[:0], req, res, err)
	c.write(*bp)
	c.release(n)
	putBuf(bp)
}

func (c *conn) serveRequest(req *request) (res result, err error) {
	if req.err != nil {
		return result{}, req.err
	}
	defer func() {
		if p := recover(); p != nil {
			c.s.logger.Error("rpc: panic serving a request", "remote", c.remote,
				"method", methodName[req.m], "panic", p, "stack", string(debug.Stack()))
			res, err = result{}, errPanic(req.m)
		}
	}()
	if obs := c.s.cfg.Observer; obs != nil {
		start := time.Now()
		defer func() { obs.ObserveCall(methodName[req.m], req.storage, time.Since(start), err) }()
	}
	return c.s.call(c.s.base, req)
}

// write sends one reply frame. It first writes what the socket takes at
// once; only a reply that must wait for the client to read arms
// WriteTimeout, and a client that does not read within it loses the
// connection.
func (c *conn) write(b []byte) {
	c.wmu.Lock()
	rest, err := b, error(nil)
	if c.raw != nil {
		rest, err = c.raw.tryWrite(b)
	}
	if err == nil && len(rest) > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
		if _, err = c.nc.Write(rest); err == nil {
			_ = c.nc.SetWriteDeadline(time.Time{})
		}
	}
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
	}
}

// fail ends the connection after a failed write: the peer is gone, does
// not read (write deadline), or Shutdown closed it. Replies waiting for
// room are dropped and the read loop stops.
func (c *conn) fail(err error) {
	first := !c.broken.Swap(true)
	c.bmu.Lock()
	c.bcond.Broadcast()
	c.bmu.Unlock()
	if ne := net.Error(nil); first && errors.As(err, &ne) && ne.Timeout() {
		c.s.logger.Warn("rpc: closing connection: reply not taken within write_timeout",
			"remote", c.remote, "write_timeout", c.s.cfg.WriteTimeout)
	} else if first {
		c.s.logger.Debug("rpc: write failed", "remote", c.remote, "err", err)
	}
	_ = c.nc.Close()
}

// reserve waits until the backlog has room for a reply of n bytes, then
// counts it. A reply larger than MaxReplyBacklog waits for an empty
// backlog and goes alone. It returns false once the connection is broken:
// the reply is dropped.
func (c *conn) reserve(n int) bool {
	limit, m := int64(c.s.cfg.MaxReplyBacklog), int64(n)
	for !c.broken.Load() {
		if v := c.backlog.Add(m); v <= limit || v == m {
			return true
		}
		c.backlog.Add(-m)
		c.waiting.Add(1)
		c.wake() // the undone reservation may have made others wait
		c.sleep(func() bool { v := c.backlog.Load(); return v == 0 || v+m <= limit })
		c.waiting.Add(-1)
		c.wake() // the reader may be waiting for no reply to wait
	}
	return false
}

// release uncounts a written (or dropped) reply of n bytes.
func (c *conn) release(n int) {
	c.backlog.Add(-int64(n))
	c.wake()
}

// waitBacklog holds the reader while the backlog is full or a reply waits
// for room: a client that does not read its replies gets no more requests
// served.
func (c *conn) waitBacklog() error {
	limit := int64(c.s.cfg.MaxReplyBacklog)
	ready := func() bool { return c.backlog.Load() < limit && c.waiting.Load() == 0 }
	if !ready() {
		c.sleep(ready)
	}
	if c.broken.Load() {
		return net.ErrClosed
	}
	return nil
}

// sleep waits on bcond until ready or the connection breaks. A sleeper is
// counted before it checks ready, and a waker changes the counters before
// it looks for sleepers, so no wake-up is lost.
func (c *conn) sleep(ready func() bool) {
	c.bmu.Lock()
	c.sleepers.Add(1)
	for !c.broken.Load() && !ready() {
		c.bcond.Wait()
	}
	c.sleepers.Add(-1)
	c.bmu.Unlock()
}

// wake wakes the sleepers, if there are any.
func (c *conn) wake() {
	if c.sleepers.Load() > 0 {
		c.bmu.Lock()
		c.bcond.Broadcast()
		c.bmu.Unlock()
	}
}

// replySize is the size of the reply frame appendReply will build for req
// (an upper bound for JSON), computed without encoding it, so that the
// backlog is reserved before the memory is taken. A reply too large for
// one frame becomes an error reply, and its size is that of the error.
func (s *Server) replySize(req *request, res result, err error) (int, error) {
	name := req.name()
	if err == nil {
		var body int
		if req.codec == frame.CodecJSON {
			body = resultSizeJSON(res)
		} else {
			body = resultSizeProto(req.m, res)
		}
		if size := len(name) + body; uint64(size) <= s.maxReply {
			return headerLen + size, nil
		}
		err = errReplyTooLarge(name, len(name)+body, s.maxReply)
	}
	return headerLen + len(name) + len(err.Error()), err
}

// appendReply appends the reply frame for req: header, method name, then
// the encoded response or, with the ERROR flag, the error text.
func (s *Server) appendReply(b []byte, req *request, res result, err error) []byte {
	var hdr [headerLen]byte
	b = append(b, hdr[:]...)
	name := req.name()
	b = append(b, name...)
	flags := req.codec
	if err == nil {
		switch req.codec {
		case frame.CodecProto:
			b = appendResultProto(b, req.m, res)
		case frame.CodecJSON:
			b, err = appendResultJSON(b, req.m, res)
		}
		if size := len(b) - headerLen; err == nil && uint64(size) > s.maxReply {
			err = errReplyTooLarge(name, size, s.maxReply)
		}
	}
	if err != nil {
		b = append(b[:headerLen+len(name)], err.Error()...)
		flags |= frame.ERROR
		if s.logger.Enabled(context.Background(), slog.LevelDebug) {
			s.logger.Debug("rpc: error reply", "method", name, "seq", req.seq, "err", err)
		}
	}
	putHeader(b[:headerLen], flags, uint32(len(b)-headerLen), req.seq, uint32(len(name)))
	return b
}

var (
	requestPool = sync.Pool{New: func() any { return new(request) }}
	bufPool     = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
)

func getRequest() *request { return requestPool.Get().(*request) }

func putRequest(r *request) {
	r.reset()
	requestPool.Put(r)
}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooledReply {
		bufPool.Put(b)
	}
}
