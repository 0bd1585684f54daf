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
func restrictSocket(_, _ string, c syscall.RawConn) error {
	var ferr error
	err := c.Control(func(fd uintptr) { ferr = syscall.Fchmod(int(fd), socketMode) })
	if err != nil {
		return err //nolint:wrapcheck // Listen wraps it with the address
	}
	return ferr //nolint:wrapcheck
}

// openFileLimit is the process's soft limit on open files (0 if unknown).
func openFileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur)
}
