//go:build !unix

package rpc

import "syscall"

const socketMode = 0o660

func restrictSocket(_, _ string, _ syscall.RawConn) error { return nil }

func openFileLimit() int { return 0 }
