//go:build unix

package rpc

import (
	"syscall"
)

// socketMode is the permission of a unix RPC socket: owner and group may
// connect, nobody else, whatever the process umask.
const socketMode = 0o660

// restrictSocket is the ListenConfig.Control of a unix socket. On Linux the
// file bind creates takes the socket inode's mode (less the umask), so
// narrowing the inode before bind leaves no moment in which the file is
// open to everyone; Listen then chmods the file to exactly socketMode.
// Systems that refuse fchmod on a socket only get the chmod.
func restrictSocket(_, _ string, c syscall.RawConn) error {
	err := c.Control(func(fd uintptr) { _ = syscall.Fchmod(int(fd), socketMode) })
	if err != nil {
		return err // Listen wraps it with the address
	}
	return nil
}

// openFileLimit is the process's soft limit on open files (0 if unknown).
func openFileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur)
}

// rawWriter writes replies straight to a connection's descriptor. Its
// method value is made once per connection, so a write allocates nothing.
type rawWriter struct {
	rc   syscall.RawConn
	do   func(fd uintptr) bool // w.write, bound once
	b    []byte                // what is left to write
	werr error
}

// newRawWriter returns a writer for a TCP or unix connection, or nil.
func newRawWriter(nc any) *rawWriter {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &rawWriter{rc: rc}
	w.do = w.write
	return w
}

// tryWrite writes as much of b as the socket takes without waiting and
// returns the rest. Replies that fit in the socket's buffer, nearly all of
// them, are thus written without a deadline: no clock read and no timer in
// the runtime's heap for each reply. Calls must not overlap.
func (w *rawWriter) tryWrite(b []byte) ([]byte, error) {
	w.b, w.werr = b, nil
	err := w.rc.Write(w.do)
	rest, werr := w.b, w.werr
	w.b, w.werr = nil, nil
	if err != nil {
		return rest, err // the caller closes the connection and logs it
	}
	return rest, werr
}

func (w *rawWriter) write(fd uintptr) bool {
	for len(w.b) > 0 {
		n, err := syscall.Write(int(fd), w.b)
		if n > 0 {
			w.b = w.b[n:]
		}
		switch err { // bare errnos from the system call
		case nil:
			if n > 0 {
				continue
			}
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
		default:
			w.werr = err
		}
		break
	}
	return true // never wait here: the caller waits, under a deadline
}
