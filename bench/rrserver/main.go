// Command rrserver is a RoadRunner process cut down to what the KV benchmark needs: the config,
// logger, rpc, kv, memory and boltdb plugins at the versions RoadRunner v2025.1.15 ships. It lets
// bench/run.sh measure kvnode against the very plugin code PHP applications run today, on the same
// machine and in the same run, instead of against remembered numbers.
//
// It lives in its own Go module so that the main module's `go build ./...`, `go test ./...` and CI
// never pull in RoadRunner's dependency tree.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/roadrunner-server/boltdb/v5"
	"github.com/roadrunner-server/config/v5"
	"github.com/roadrunner-server/endure/v2"
	"github.com/roadrunner-server/kv/v5"
	"github.com/roadrunner-server/logger/v5"
	"github.com/roadrunner-server/memory/v5"
	"github.com/roadrunner-server/rpc/v5"
)

// rrVersion is what the config plugin reports to the others; the rpc plugin only prints it.
const rrVersion = "2025.1.15"

// errNoConfig is returned when -c is missing, because every plugin needs the file.
var errNoConfig = errors.New("rrserver: -c config.yaml is required")

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("rrserver", flag.ContinueOnError)
	cfgPath := fs.String("c", "", "path to a RoadRunner .rr.yaml")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return errNoConfig
	}

	// Endure's own logging is kept to errors so it does not cost anything during a benchmark.
	cont := endure.New(slog.LevelError, endure.GracefulShutdownTimeout(10*time.Second))
	plugins := []any{
		&config.Plugin{Path: *cfgPath, Version: rrVersion, Timeout: 10 * time.Second},
		&logger.Plugin{},
		&rpc.Plugin{},
		&memory.Plugin{},
		&boltdb.Plugin{},
		&kv.Plugin{},
	}
	if err := cont.RegisterAll(plugins...); err != nil {
		return fmt.Errorf("rrserver: register plugins: %w", err)
	}
	if err := cont.Init(); err != nil {
		return fmt.Errorf("rrserver: init: %w", err)
	}
	errCh, err := cont.Serve()
	if err != nil {
		return fmt.Errorf("rrserver: serve: %w", err)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)

	select {
	case e := <-errCh:
		stopErr := cont.Stop()
		return errors.Join(fmt.Errorf("rrserver: plugin %s: %w", e.VertexID, e.Error), stopErr)
	case <-sig:
		return cont.Stop()
	}
}
