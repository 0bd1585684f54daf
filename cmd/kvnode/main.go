package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memcached"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/drivers/redis"
	"github.com/kvnode/kvnode/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version or VCS revision from the build info is used.
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// storageDrivers lists the drivers kv.<name>.driver may name, in the order
// messages list them. A new driver is its package plus one entry here.
func storageDrivers() *drivers.Registry {
	return drivers.NewRegistry(memory.Driver(), boltdb.Driver(), redis.Driver(), memcached.Driver())
}

// commands lists kvnode's sub-commands in the order help shows them: serve
// (the default) is this package's, the others are package internal/cli's.
func commands() []cli.Command {
	return []cli.Command{
		{Name: "serve", Usage: "serve the kv RPC API (the default command)", Run: runServe},
		{Name: "get", Usage: "print the values of keys", Run: cli.Get},
		{Name: "set", Usage: "store a key", Run: cli.Set},
		{Name: "del", Usage: "delete keys", Run: cli.Del},
		{Name: "has", Usage: "print which keys exist", Run: cli.Has},
		{Name: "ttl", Usage: "print the expiry of keys", Run: cli.TTL},
		{Name: "expire", Usage: "change the expiry of keys", Run: cli.Expire},
		{Name: "clear", Usage: "delete every key of a storage", Run: cli.Clear},
		{Name: "status", Usage: "print a node's view of itself and the cluster", Run: cli.Status},
		{Name: "health", Usage: "exit 0 if a node answers (--ready: and is ready)", Run: cli.Health},
		{Name: "snapshot", Usage: "save a cluster's state to a file, restore or inspect one", Run: cli.Snapshot(buildVersion())},
		{Name: "events", Usage: "print the event log (writes, expiries, evictions) and follow it", Run: cli.Events},
		{Name: "bench", Usage: "measure a kvnode (or RoadRunner) server", Run: cli.Bench},
		{Name: "tls", Usage: "create a cluster CA (tls ca) and node certificates (tls cert NODE)", Run: cli.TLS},
		{Name: "keygen", Usage: "print a new gossip encryption key", Run: cli.Keygen},
		{Name: "version", Usage: "print the version", Run: runVersion},
	}
}

// run dispatches args (cli.Run) and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Run(ctx, commands(), args, stdout, stderr)
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("version", "", stderr)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: version takes no arguments", cli.ErrUsage)
	}
	_, err := fmt.Fprintf(stdout, "kvnode %s %s %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err //nolint:wrapcheck // a failed write to stdout needs no context
}

// buildVersion is the -ldflags version, the module version, or the VCS
// revision (with +dirty), in that order.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return "dev"
	}
	return "dev-" + rev + dirty
}
