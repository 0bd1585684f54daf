package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/kvnode/kvnode/bench/load"
	"github.com/kvnode/kvnode/client"
)

// Limits that keep a mistyped flag from exhausting memory.
const (
	benchMaxKeyspace = 10_000_000
	benchMaxConns    = 10_000
	benchPreloadN    = 100 // keys per kv.Set while preloading, by default
)

// benchFlags are kvnode bench's flags: the run, and how to print it.
type benchFlags struct {
	cfg            load.Config
	jsonOut, quiet bool
}

func parseBenchFlags(args []string, stderr io.Writer) (*benchFlags, error) {
	fs := NewFlagSet("bench", "[flags]", stderr)
	bf := &benchFlags{}
	cfg := &bf.cfg
	fs.StringVar(&cfg.RPC, "rpc", defaultRPCAddr, "RPC address: tcp://host:port, host:port or unix:///path")
	fs.StringVar(&cfg.Storage, "storage", defaultStorage, "storage to load (keys are named bench:NNNNNNNN)")
	fs.IntVar(&cfg.Conns, "c", 16, "connections; each sends one request at a time, like a PHP worker")
	fs.DurationVar(&cfg.Duration, "d", 10*time.Second, "how long to measure, after the warm-up")
	fs.Int64Var(&cfg.Total, "n", 0, "total requests to measure (instead of -d, or whichever ends first when both are given)")
	fs.StringVar(&cfg.Op, "op", load.OpMGet, "request mix: set, mget, has, or mixed (80% mget, 20% set)")
	fs.IntVar(&cfg.Keys, "keys", 1, "keys per request")
	fs.IntVar(&cfg.Size, "size", 100, "value size in bytes")
	fs.IntVar(&cfg.Keyspace, "keyspace", 100_000, "number of distinct keys")
	fs.DurationVar(&cfg.TTL, "ttl", 0, "TTL of the keys written (0: none)")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "run this long before measuring")
	fs.IntVar(&cfg.PreloadBatch, "preload-batch", benchPreloadN, "keys per kv.Set while preloading")
	fs.BoolVar(&cfg.Preload, "preload", true, "set every key before measuring so reads hit (default for mget, has, mixed; set it explicitly for --op set)")
	fs.BoolVar(&bf.jsonOut, "json", false, "print the result as JSON")
	fs.BoolVar(&bf.quiet, "q", false, "no progress line on stderr")
	pos, err := parseVerbArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != 0 {
		return nil, usageErr(fs, "takes no arguments, got %q", pos)
	}
	if flagWasSet(fs, "n") && !flagWasSet(fs, "d") {
		cfg.Duration = 0
	}
	if cfg.Op == load.OpSet && !flagWasSet(fs, "preload") {
		cfg.Preload = false
	}
	if _, _, err := client.ParseAddr(cfg.RPC); err != nil {
		return nil, usageErr(fs, "--rpc: %v", err)
	}
	switch {
	case cfg.Op != load.OpSet && cfg.Op != load.OpMGet && cfg.Op != load.OpHas && cfg.Op != load.OpMixed:
		return nil, usageErr(fs, "--op must be set, mget, has or mixed, not %q", cfg.Op)
	case cfg.Conns < 1 || cfg.Conns > benchMaxConns:
		return nil, usageErr(fs, "-c must be between 1 and %d", benchMaxConns)
	case cfg.Keyspace < 1 || cfg.Keyspace > benchMaxKeyspace:
		return nil, usageErr(fs, "--keyspace must be between 1 and %d", benchMaxKeyspace)
	case cfg.Keys < 1 || cfg.Keys > cfg.Keyspace:
		return nil, usageErr(fs, "--keys must be between 1 and --keyspace")
	case cfg.Size < 0 || cfg.Total < 0 || cfg.Duration < 0 || cfg.TTL < 0 || cfg.Warmup < 0:
		return nil, usageErr(fs, "--size, -n, -d, --ttl and --warmup cannot be negative")
	case cfg.Duration == 0 && cfg.Total == 0:
		return nil, usageErr(fs, "one of -d and -n must be positive")
	}
	if !bf.quiet {
		cfg.Progress, cfg.Overwrite = stderr, writerIsTerminal(stderr)
	}
	return bf, nil
}

// Bench runs the load generator (package bench/load) and prints its
// report: text, or JSON with --json. Ctrl-C ends the run early and still
// prints what was measured; any failed request fails the command.
func Bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	bf, err := parseBenchFlags(args, stderr)
	if err != nil {
		return err
	}
	res, err := load.Run(ctx, bf.cfg)
	if err != nil {
		return err //nolint:wrapcheck // the load generator's errors say what failed
	}
	if bf.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("write result: %w", err)
		}
	} else if err := res.WriteText(stdout); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	if res.Total.Errors > 0 {
		return fmt.Errorf("%d of %d requests failed, first: %s", res.Total.Errors, res.Total.Requests, res.FirstError)
	}
	return nil
}
