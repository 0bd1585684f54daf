package rpc

import (
	"fmt"
	"strings"
	"time"

	"github.com/kvnode/kvnode/drivers"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultMaxFrameSize bounds a request payload. RoadRunner has no limit;
	// 32 MiB leaves room for the largest values PHP applications store
	// (3 MiB is the documented round trip) while one connection can no
	// longer make the server allocate 4 GiB with a 20-byte header.
	DefaultMaxFrameSize = 32 << 20
	// DefaultRequestTimeout is the deadline of every Store call.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultFrameTimeout is how long a whole frame may take to arrive once
	// the server has to wait for the rest of it.
	DefaultFrameTimeout = 30 * time.Second
	// DefaultMaxInFlight bounds the requests one connection may have in
	// progress; the server stops reading from it until one completes.
	DefaultMaxInFlight = 256
	// DefaultMaxItems bounds the items of one request. RoadRunner has no
	// limit, and decoded items cost far more than their bytes on the wire
	// (an empty item is 2 bytes in a frame, about 170 in memory), so a
	// 32 MiB frame could make the server allocate gigabytes. 100,000 is
	// far above any PHP getMultiple/setMultiple batch and keeps one
	// request's decoded items to about 20 MiB.
	DefaultMaxItems = 100_000
	// DefaultMaxConnections bounds the open connections. PHP workers each
	// hold one persistent connection: a few application hosts with pools of
	// a few hundred workers stay far below it, while an idle connection costs
	// about 30 KiB (read buffer, goroutine, socket), so the cap keeps a
	// connection flood near 120 MiB and leaves file descriptors for storage
	// and cluster traffic. Lowered to half the process's file limit when
	// that is smaller.
	DefaultMaxConnections = 4096
	// DefaultWriteTimeout is how long the client may take to accept a
	// reply; a connection that does not read is closed after it.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultMaxReplyBacklog bounds the reply bytes of one connection that
	// are encoded but not yet written (a client that sends and does not
	// read): beyond it the server stops reading that connection's requests.
	DefaultMaxReplyBacklog = 8 << 20
)

// Config configures a Server. Zero fields take the defaults above.
type Config struct {
	// Listen is "tcp://host:port" (port 0 picks a free one) or
	// "unix:///path/to.sock", as RoadRunner's rpc.listen.
	Listen string
	// MaxFrameSize is the largest request payload accepted, in bytes. A
	// larger frame closes its connection (the server logs the limit).
	MaxFrameSize int
	// RequestTimeout is the deadline given to every Store call.
	RequestTimeout time.Duration
	// IdleTimeout closes a connection that sends nothing for this long.
	// Zero (the default, as RoadRunner) keeps idle connections open:
	// PHP workers hold one persistent connection each.
	IdleTimeout time.Duration
	// FrameTimeout closes a connection whose frame does not arrive whole
	// within this time of the server first waiting for the rest of it: a
	// deadline for the whole frame, however slowly its bytes trickle in.
	FrameTimeout time.Duration
	// WriteTimeout closes a connection that does not take a reply within
	// this time.
	WriteTimeout time.Duration
	// MaxInFlight bounds the concurrent requests of one connection.
	MaxInFlight int
	// MaxItems bounds the items of one request; a request with more is
	// answered with an error and costs no more than counting them.
	MaxItems int
	// MaxConnections bounds the open connections; further ones are closed
	// as soon as they are accepted (and logged, at most every 10 s).
	MaxConnections int
	// MaxReplyBacklog bounds, in bytes, the replies of one connection
	// waiting to be written; the server stops reading its requests until
	// the client takes them. One reply larger than this is still sent, alone.
	MaxReplyBacklog int
	// AdminToken, when set, is required by every kvnode.* call except
	// Status and Health: the calls that export or replace data. Without
	// it, Listen refuses any address but loopback and unix sockets while
	// Admin is set (ErrInsecureAdmin).
	AdminToken string
	// Observer, when set, is told about every call (for metrics), the
	// kvnode.* admin calls included (with an empty storage).
	Observer Observer
	// Admin, when set, serves the kvnode.* methods (status, health,
	// backups) on the same listener; without it they are unknown methods.
	Admin Admin
}

// Observer receives one notification per served kv call. It must be cheap
// and safe for concurrent use; it runs on the request's goroutine.
type Observer interface {
	// ObserveCall reports the method ("kv.Set"), the storage name as sent,
	// the time spent serving the call and its error (nil on success).
	ObserveCall(method, storage string, elapsed time.Duration, err error)
}

// Storage is one named storage the server serves.
type Storage struct {
	// Name is the storage name requests use (the key under kv: in the
	// config).
	Name string
	// Driver describes the storage's driver: its ErrorOp and TTLRefusal
	// give RoadRunner's error texts.
	Driver drivers.Driver
	// Store serves the calls.
	Store drivers.Store
	// Inline marks a Store whose calls finish in microseconds without I/O
	// or waiting on other nodes (a single-node memory storage). The server
	// then runs them on the connection's reader goroutine, saving a
	// goroutine hand-off per request. Leave it false for anything that
	// may block (disk, network, raft): a blocking inline call would hold
	// up every later request on its connection.
	Inline bool
	// ReadsInline, if set, is asked per read (Has, MGet, TTL) of a Store
	// that is not Inline whether this read would finish in microseconds
	// without waiting (a replicated memory storage whose node has applied
	// every write it acknowledged); the server then serves it on the
	// reader goroutine too. Writes always go to a worker. A read found
	// ready that must wait after all (a write acknowledged in between)
	// waits on the reader, as briefly as the node takes to apply it.
	ReadsInline func() bool
}

func (c *Config) setDefaults() {
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.FrameTimeout <= 0 {
		c.FrameTimeout = DefaultFrameTimeout
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxItems <= 0 {
		c.MaxItems = DefaultMaxItems
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
		if fds := openFileLimit(); fds > 0 && fds/2 < c.MaxConnections {
			c.MaxConnections = max(fds/2, 1)
		}
	}
	if c.MaxReplyBacklog <= 0 {
		c.MaxReplyBacklog = DefaultMaxReplyBacklog
	}
}

// parseListen splits a DSN into the network and address net.Listen takes.
func parseListen(dsn string) (network, addr string, err error) {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return "", "", fmt.Errorf("%w %q: want tcp://host:port or unix:///path", ErrListen, dsn)
	}
	switch scheme {
	case "tcp", "tcp4", "tcp6":
		if rest == "" {
			return "", "", fmt.Errorf("%w %q: missing host:port", ErrListen, dsn)
		}
	case "unix":
		if rest == "" {
			return "", "", fmt.Errorf("%w %q: missing socket path", ErrListen, dsn)
		}
	default:
		return "", "", fmt.Errorf("%w %q: scheme must be tcp or unix", ErrListen, dsn)
	}
	return scheme, rest, nil
}
