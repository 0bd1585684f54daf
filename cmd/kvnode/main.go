package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memcached"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/drivers/redis"
)

// ErrUsage marks a command-line mistake (unknown command, bad flag, wrong
// number of arguments); run exits with status 2 for it instead of 1.
var ErrUsage = errors.New("usage")

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

// command is one kvnode sub-command. run gets the arguments after the
// command name; it returns an error wrapping ErrUsage for a command-line
// mistake and flag.ErrHelp after printing help.
type command struct {
	name, usage string
	run         func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists kvnode's sub-commands in the order help shows them. The
// client verbs and bench live in client_cmds.go and bench*.go.
func commands() []command {
	return []command{
		{"serve", "serve the kv RPC API (the default command)", runServe},
		{"get", "print the values of keys", runGet},
		{"set", "store a key", runSet},
		{"del", "delete keys", runDel},
		{"has", "print which keys exist", runHas},
		{"ttl", "print the expiry of keys", runTTL},
		{"expire", "change the expiry of keys", runExpire},
		{"clear", "delete every key of a storage", runClear},
		{"status", "print a node's view of itself and the cluster", runStatus},
		{"health", "exit 0 if a node answers (--ready: and is ready)", runHealth},
		{"snapshot", "save a cluster's state to a file, restore or inspect one", runSnapshot},
		{"events", "print the event log (writes, expiries, evictions) and follow it", runEvents},
		{"bench", "measure a kvnode (or RoadRunner) server", runBench},
		{"tls", "create a cluster CA (tls ca) and node certificates (tls cert NODE)", runTLS},
		{"keygen", "print a new gossip encryption key", runKeygen},
		{"version", "print the version", runVersion},
	}
}

// run dispatches args and returns the process exit status: 0 on success,
// 2 for a usage error, 1 for anything else. With no arguments, or when the
// first one is a flag (kvnode -c .rr.yaml), it serves.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name, rest := "serve", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, rest = args[0], args[1:]
	}
	if len(args) > 0 {
		switch args[0] {
		case "help", "-h", "-help", "--help":
			printUsage(stdout)
			return 0
		}
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, rest, stdout, stderr)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, ErrUsage):
			fmt.Fprintf(stderr, "kvnode %s: %v\n", name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "kvnode %s: %v\n", name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "kvnode: unknown command %q\n\n", name)
	printUsage(stderr)
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: kvnode [command] [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "kvnode <command> -h" for a command's flags. Without a command kvnode serves.`)
}

// newFlagSet returns a FlagSet for a command that reports parse errors to
// its caller instead of exiting, and prints help to stderr.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kvnode "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kvnode %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, wrapping a parse error in ErrUsage (the FlagSet
// has already printed it with the usage) and passing flag.ErrHelp through.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err //nolint:wrapcheck // run recognises it
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return nil
}

// stringsFlag is a repeatable string flag (-o a=1 -o b=2).
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ", ") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: version takes no arguments", ErrUsage)
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
