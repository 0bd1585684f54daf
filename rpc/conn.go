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

	wmu      sync.Mutex // serialises reply frames
	inflight sync.WaitGroup
	sem      chan struct{} // bounds requests in flight
	deadline bool          // a read deadline is set on nc
}

func (s *Server) newConn(nc net.Conn) *conn {
	remote := s.network
	if a := nc.RemoteAddr(); a != nil && a.String() != "" {
		remote = a.String()
	}
	return &conn{
		s:      s,
		nc:     nc,
		br:     bufio.NewReaderSize(nc, readBufSize),
		remote: remote,
		sem:    make(chan struct{}, s.cfg.MaxInFlight),
	}
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
		req, err := c.readRequest()
		if err != nil {
			return err
		}
		c.dispatch(req)
	}
}

// dispatch serves req on the reader goroutine when that cannot block (an
// error reply, an inline storage), else on its own goroutine.
func (c *conn) dispatch(req *request) {
	if req.err != nil || req.admin == aNone && (req.st == nil || req.st.inline) {
		c.process(req)
		return
	}
	c.sem <- struct{}{}
	c.inflight.Add(1)
	go func() {
		defer func() {
			<-c.sem
			c.inflight.Done()
		}()
		c.process(req)
	}()
}

// readRequest reads and decodes one frame. Every header field is checked
// before the payload is waited for or buffered: a frame goridge's codec
// would choke on closes the connection instead.
func (c *conn) readRequest() (*request, error) {
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
		req.unknown = string(name)
		if !c.s.decodeAdmin(req, req.unknown, payload[mlen:]) {
			req.err = errMethod(req.unknown)
		}
	} else if err := decodeBody(payload[mlen:], req, c.s.storages); err != nil {
		req.err = err
	}
	if inBuf {
		_, _ = c.br.Discard(n)
	}
	return req, nil
}

// peek returns the next n buffered bytes, reading as needed. Deadlines are
// only touched when a read has to block: IdleTimeout while waiting for a new
// frame, FrameTimeout while in the middle of one.
func (c *conn) peek(n int, frameStart bool) ([]byte, error) {
	if c.br.Buffered() >= n {
		return c.br.Peek(n)
	}
	between := frameStart && c.br.Buffered() == 0
	if err := c.armDeadline(between); err != nil {
		return nil, err
	}
	b, err := c.br.Peek(n)
	if err != nil {
		return nil, c.readErr(err, between)
	}
	return b, nil
}

// armDeadline sets the read deadline for a blocking read. It checks for
// shutdown after setting it, so a deadline set here can never override the
// one Shutdown set to wake this reader.
func (c *conn) armDeadline(between bool) error {
	timeout := c.s.cfg.FrameTimeout
	if between {
		timeout = c.s.cfg.IdleTimeout
	}
	switch {
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

func (c *conn) readErr(err error, between bool) error {
	if c.s.draining.Load() {
		return errDraining
	}
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		if between {
			return fmt.Errorf("idle for %s: %w", c.s.cfg.IdleTimeout, os.ErrDeadlineExceeded)
		}
		return fmt.Errorf("%w: no progress for %s", ErrFrameTruncated, c.s.cfg.FrameTimeout)
	}
	if errors.Is(err, io.EOF) && !between {
		return ErrFrameTruncated
	}
	return err
}

// deadlineReader reads a large payload, re-arming FrameTimeout before each
// read so a slow but progressing upload is not cut off.
type deadlineReader struct{ c *conn }

func (d deadlineReader) Read(p []byte) (int, error) {
	if d.c.br.Buffered() == 0 {
		if err := d.c.armDeadline(false); err != nil {
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
	bp := getBuf()
	*bp = c.s.appendReply((*bp)[:0], req, res, err)
	c.write(*bp)
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

func (c *conn) write(b []byte) {
	c.wmu.Lock()
	_, err := c.nc.Write(b)
	c.wmu.Unlock()
	if err != nil {
		// The peer is gone or the connection was closed by Shutdown: make
		// the read loop stop too.
		c.s.logger.Debug("rpc: write failed", "remote", c.remote, "err", err)
		_ = c.nc.Close()
	}
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
