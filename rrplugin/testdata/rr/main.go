// Command rr is a RoadRunner binary for the plugin's tests and benchmark:
// the config, logger, rpc, kv, memory and metrics plugins at the versions
// RoadRunner v2025.1.15 ships, plus the kvnode driver from this tree. It is
// what velox would build from a velox.toml listing the same plugins.
//
// It has a module of its own so that the plugin's go.mod lists what the
// plugin needs, not what a whole RoadRunner needs.
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

	"github.com/roadrunner-server/config/v5"
	"github.com/roadrunner-server/endure/v2"
	"github.com/roadrunner-server/kv/v5"
	"github.com/roadrunner-server/logger/v5"
	"github.com/roadrunner-server/memory/v5"
	"github.com/roadrunner-server/metrics/v5"
	"github.com/roadrunner-server/rpc/v5"

	"github.com/kvnode/kvnode/rrplugin"
)

// rrVersion is what the config plugin reports to the others.
const rrVersion = "2025.1.15"

var errNoConfig = errors.New("rr: -c config.yaml is required")

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("rr", flag.ContinueOnError)
	cfgPath := fs.String("c", "", "path to a RoadRunner .rr.yaml")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return errNoConfig
	}
	cont := endure.New(slog.LevelError, endure.GracefulShutdownTimeout(10*time.Second))
	if err := cont.RegisterAll(
		&config.Plugin{Path: *cfgPath, Version: rrVersion, Timeout: 10 * time.Second},
		&logger.Plugin{},
		&rpc.Plugin{},
		&metrics.Plugin{},
		&memory.Plugin{},
		&rrplugin.Plugin{},
		&kv.Plugin{},
	); err != nil {
		return fmt.Errorf("rr: register plugins: %w", err)
	}
	if err := cont.Init(); err != nil {
		return fmt.Errorf("rr: init: %w", err)
	}
	errCh, err := cont.Serve()
	if err != nil {
		return fmt.Errorf("rr: serve: %w", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case e := <-errCh:
		return errors.Join(fmt.Errorf("rr: plugin %s: %w", e.VertexID, e.Error), cont.Stop())
	case <-sig:
		return cont.Stop()
	}
}
