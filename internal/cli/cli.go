package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ErrUsage marks a command-line mistake (unknown command, bad flag, wrong
// number of arguments); Run exits with status 2 for it instead of 1.
var ErrUsage = errors.New("usage")

// Command is one kvnode sub-command. Run gets the arguments after the
// command name; it returns an error wrapping ErrUsage for a command-line
// mistake and flag.ErrHelp after printing help.
type Command struct {
	Name, Usage string
	Run         func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// Run dispatches args among cmds and returns the process exit status: 0 on
// success, 2 for a usage error, 1 for anything else. With no arguments, or
// when the first one is a flag (kvnode -c .rr.yaml), it runs the first
// command (serve).
func Run(ctx context.Context, cmds []Command, args []string, stdout, stderr io.Writer) int {
	name, rest := cmds[0].Name, args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, rest = args[0], args[1:]
	}
	if len(args) > 0 {
		switch args[0] {
		case "help", "-h", "-help", "--help":
			printUsage(stdout, cmds)
			return 0
		}
	}
	for _, c := range cmds {
		if c.Name != name {
			continue
		}
		err := c.Run(ctx, rest, stdout, stderr)
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
	printUsage(stderr, cmds)
	return 2
}

func printUsage(w io.Writer, cmds []Command) {
	fmt.Fprintln(w, "Usage: kvnode [command] [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-8s %s\n", c.Name, c.Usage)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "kvnode <command> -h" for a command's flags. Without a command kvnode serves.`)
}

// NewFlagSet returns a FlagSet for a command that reports parse errors to
// its caller instead of exiting, and prints help to stderr.
func NewFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kvnode "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kvnode %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// ParseFlags parses args, wrapping a parse error in ErrUsage (the FlagSet
// has already printed it with the usage) and passing flag.ErrHelp through.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err //nolint:wrapcheck // Run recognises it
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return nil
}

// StringsFlag is a repeatable string flag (-o a=1 -o b=2).
type StringsFlag []string

func (s *StringsFlag) String() string     { return strings.Join(*s, ", ") }
func (s *StringsFlag) Set(v string) error { *s = append(*s, v); return nil }
