package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvnode/kvnode/drivers/boltdb"
)

// TestMain lets a test run this binary as kvnode itself: with
// KVNODE_TEST_MAIN set, the process runs main() with the newline-separated
// arguments it holds, so signal handling is tested in a real process
// without building a second binary.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv("KVNODE_TEST_MAIN"); ok {
		os.Args = append([]string{"kvnode"}, strings.Split(args, "\n")...)
		main()
		return
	}
	os.Exit(m.Run())
}

func TestMain_SignalsStopCleanly(t *testing.T) {
	t.Parallel()
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "files.db")
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "KVNODE_TEST_MAIN="+strings.Join([]string{
				"serve",
				"-o", "rpc.listen=tcp://127.0.0.1:0",
				"-o", "kv.files.driver=boltdb",
				"-o", "kv.files.config.file=" + file,
			}, "\n"))
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			var m []string
			if !poll(30*time.Second, func() bool { m = servingLine.FindStringSubmatch(stderr.String()); return m != nil }) {
				_ = cmd.Process.Kill()
				t.Fatalf("not serving:\n%s", stderr.String())
			}
			setAndGet(t, dialKV(t, m[1]), "files", "k", "v")
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				var ee *exec.ExitError
				if errors.As(err, &ee) || err != nil {
					t.Fatalf("exit: %v\nlog:\n%s", err, stderr.String())
				}
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("still running 30s after %s:\n%s", sig, stderr.String())
			}
			if !strings.Contains(stderr.String(), `msg="kvnode stopped"`) {
				t.Errorf("no clean stop logged:\n%s", stderr.String())
			}
			e, err := boltdb.Open(boltdb.Config{File: file, LockTimeout: 100 * time.Millisecond}, nil)
			if err != nil {
				t.Fatalf("boltdb file not closed at exit: %v", err)
			}
			_ = e.Close()
		})
	}
}
