package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kvnode/kvnode/client"
)

// errKeyNotFound is returned by the single-key forms of get and ttl, and by
// has, when a key does not exist, so that the exit status tells scripts.
var errKeyNotFound = errors.New("key not found")

// Defaults shared by every client verb and bench.
const (
	defaultRPCAddr = "tcp://127.0.0.1:6001"
	defaultStorage = "default"
)

// verbFlags are the flags every client verb takes.
type verbFlags struct {
	rpc     string
	storage string
	timeout time.Duration
}

func newVerbFlagSet(name, synopsis string, stderr io.Writer) (*flag.FlagSet, *verbFlags) {
	fs := NewFlagSet(name, synopsis, stderr)
	vf := &verbFlags{}
	fs.StringVar(&vf.rpc, "rpc", defaultRPCAddr, "RPC address: tcp://host:port, host:port or unix:///path")
	fs.StringVar(&vf.storage, "storage", defaultStorage, "storage name (a key under kv: in the config)")
	fs.DurationVar(&vf.timeout, "timeout", 5*time.Second, "deadline for connecting and the request")
	return fs, vf
}

// parseVerbArgs parses flags wherever they appear among the arguments
// ("set k v --ttl 10s" as well as "set --ttl 10s k v"); everything after
// "--" is positional, so a key may start with a dash.
func parseVerbArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := ParseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagWasSet reports whether name was given on the command line.
func flagWasSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func usageErr(fs *flag.FlagSet, format string, a ...any) error {
	fs.Usage()
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
}

// withClient runs fn with a single-connection client and the request
// deadline from --timeout.
func (vf *verbFlags) withClient(ctx context.Context, fn func(ctx context.Context, c *client.Client) error) error {
	if vf.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, vf.timeout)
		defer cancel()
	}
	c, err := client.Dial(ctx, vf.rpc, client.WithPoolSize(1))
	if err != nil {
		return err //nolint:wrapcheck // the client's errors already name the address
	}
	defer func() { _ = c.Close() }()
	return fn(ctx, c)
}

// parseKeysVerb parses the flags and the KEY... arguments of a verb that
// takes one key or more.
func parseKeysVerb(name string, args []string, stderr io.Writer) (*verbFlags, []string, error) {
	fs, vf := newVerbFlagSet(name, "[flags] KEY...", stderr)
	keys, err := parseVerbArgs(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(keys) == 0 {
		return nil, nil, usageErr(fs, "at least one key is needed")
	}
	return vf, keys, nil
}

// Get prints the values of keys: the raw value for one key (a missing key
// is an error), "key<TAB>value" lines in argument order for several (missing
// keys are skipped).
func Get(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	vf, keys, err := parseKeysVerb("get", args, stderr)
	if err != nil {
		return err
	}
	return vf.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		vals, err := c.MGet(ctx, vf.storage, keys...)
		if err != nil {
			return err //nolint:wrapcheck // already names the method
		}
		if len(keys) == 1 {
			v, ok := vals[keys[0]]
			if !ok {
				return fmt.Errorf("%q: %w", keys[0], errKeyNotFound)
			}
			return writeValue(stdout, v)
		}
		for _, k := range keys {
			if v, ok := vals[k]; ok {
				if _, err := fmt.Fprintf(stdout, "%s\t%s\n", k, v); err != nil {
					return fmt.Errorf("write: %w", err)
				}
			}
		}
		return nil
	})
}

// writeValue writes v exactly as stored, so that "get k > file" round-trips
// with "set k - < file"; only on a terminal is a newline added for the
// prompt's sake.
func writeValue(w io.Writer, v []byte) error {
	if _, err := w.Write(v); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if writerIsTerminal(w) {
		if _, err := io.WriteString(w, "\n"); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

// writerIsTerminal reports whether w is a character device such as a tty.
func writerIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Set stores one key: set KEY VALUE [--ttl 10s | --expires RFC3339];
// VALUE "-" reads the value from standard input.
func Set(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runSetFrom(ctx, args, os.Stdin, stdout, stderr)
}

func runSetFrom(ctx context.Context, args []string, stdin io.Reader, _, stderr io.Writer) error {
	fs, vf := newVerbFlagSet("set", "[flags] KEY VALUE|-", stderr)
	ttl := fs.Duration("ttl", 0, "expire the key this long from now")
	expires := fs.String("expires", "", "expire the key at this RFC 3339 time (sent verbatim)")
	pos, err := parseVerbArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageErr(fs, "need KEY and VALUE, got %d arguments", len(pos))
	}
	item := client.Item{Key: pos[0], Value: []byte(pos[1])}
	if pos[1] == "-" {
		if item.Value, err = io.ReadAll(stdin); err != nil {
			return fmt.Errorf("set: read value from stdin: %w", err)
		}
	}
	if item.Timeout, err = timeoutFromFlags(fs, *ttl, *expires); err != nil {
		return err
	}
	return vf.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		return c.Set(ctx, vf.storage, item) //nolint:wrapcheck // already names the method
	})
}

// timeoutFromFlags turns --ttl or --expires into the timeout string sent
// to the server ("" when neither was given).
func timeoutFromFlags(fs *flag.FlagSet, ttl time.Duration, expires string) (string, error) {
	hasTTL, hasExpires := flagWasSet(fs, "ttl"), flagWasSet(fs, "expires")
	switch {
	case hasTTL && hasExpires:
		return "", usageErr(fs, "--ttl and --expires exclude each other")
	case hasTTL:
		return client.FormatTimeout(time.Now().Add(ttl)), nil
	case hasExpires:
		if _, err := time.Parse(time.RFC3339, expires); err != nil {
			return "", usageErr(fs, "--expires: %v", err)
		}
		return expires, nil
	}
	return "", nil
}

// Del removes keys; missing keys are not an error.
func Del(ctx context.Context, args []string, _, stderr io.Writer) error {
	vf, keys, err := parseKeysVerb("del", args, stderr)
	if err != nil {
		return err
	}
	return vf.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		return c.Delete(ctx, vf.storage, keys...) //nolint:wrapcheck // already names the method
	})
}

// Has prints whether keys exist: "true"/"false" for one key,
// "key<TAB>true|false" lines for several. Like grep -q, it fails (exit
// status 1) when any key is missing.
func Has(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	vf, keys, err := parseKeysVerb("has", args, stderr)
	if err != nil {
		return err
	}
	return vf.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		found, err := c.Has(ctx, vf.storage, keys...)
		if err != nil {
			return err //nolint:wrapcheck // already names the method
		}
		var missing []string
		for _, k := range keys {
			ok := slices.Contains(found, k)
			if !ok {
				missing = append(missing, strconv.Quote(k))
			}
			line := fmt.Sprintf("%t\n", ok)
			if len(keys) > 1 {
				line = k + "\t" + line
			}
			if _, err := io.WriteString(stdout, line); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s: %w", strings.Join(missing, ", "), errKeyNotFound)
		}
		return nil
	})
}

// TTL prints the expiry of keys as stored (RFC 3339) or "no expiry": the
// bare value for one key (a missing key is an error), "key<TAB>value" lines
// for several (missing keys are skipped).
func TTL(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	vf, keys, err := parseKeysVerb("ttl", args, stderr)
	if err != nil {
		return err
	}
	return vf.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		ttls, err := c.TTL(ctx, vf.storage, keys...)
		if err != nil {
			return err //nolint:wrapcheck // already names the method
		}
		show := func(t string) string {
			if t == "" {
				return "no expiry"
			}
			return t
		}
		if len(keys) == 1 {
			t, ok := ttls[keys[0]]
			if !ok {
				return fmt.Errorf("%q: %w", keys[0], errKeyNotFound)
			}
			_, err := fmt.Fprintln(stdout, show(t))
			return err //nolint:wrapcheck // a failed write to stdout speaks for itself
		}
		for _, k := range keys {
			if t, ok := ttls[k]; ok {
				if _, err := fmt.Fprintf(stdout, "%s\t%s\n", k, show(t)); err != nil {
					return fmt.Errorf("write: %w", err)
				}
			}
		}
		return nil
	})
}

// Expire changes the expiry of existing keys: expire KEY... --ttl 10s
// (or --expires RFC3339). Missing keys are skipped by the server.
func Expire(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs, vf := newVerbFlagSet("expire", "[flags] KEY... --ttl DURATION|--expires RFC3339", stderr)
	ttl := fs.Duration("ttl", 0, "expire the keys this long from now")
	expires := fs.String("expires", "", "expire the keys at this RFC 3339 time (sent verbatim)")
	keys, err := parseVerbArgs(fs, args)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return usageErr(fs, "at least one key is needed")
	}
	timeout, err := timeoutFromFlags(fs, *ttl, *expires)
	if err != nil {
		return err
	}
	if timeout == "" {
		return usageErr(fs, "--ttl or --expires is needed")
	}
	items := make([]client.Item, len(keys))
	for i, k := range keys {
		items[i] = client.Item{Key: k, Timeout: timeout}
	}
	return vf.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		return c.MExpire(ctx, vf.storage, items...) //nolint:wrapcheck // already names the method
	})
}

// Clear removes every key of the storage.
func Clear(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs, vf := newVerbFlagSet("clear", "[flags]", stderr)
	pos, err := parseVerbArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr(fs, "takes no arguments, got %q", pos)
	}
	return vf.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		return c.Clear(ctx, vf.storage) //nolint:wrapcheck // already names the method
	})
}
