package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kvnode/kvnode/rpc"
)

// errNotReady is health --ready's failure: the node answers but should not
// take traffic yet.
var errNotReady = errors.New("not ready")

// Health exits 0 when the node answers (and, with --ready, is ready),
// 1 otherwise, printing nothing on success and one line on failure: fit for
// a docker HEALTHCHECK in an image without a shell.
func Health(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, af := newAdminFlagSet("health", "[--rpc ADDR] [--ready] [--timeout 2s]", 2*time.Second, stderr)
	ready := fs.Bool("ready", false, "also require readiness: a leader is known and this node has caught up with it (a standalone node always is)")
	verbose := fs.Bool("v", false, "print the node's answer on success too")
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr(fs, "unexpected argument %q", fs.Arg(0))
	}
	c, err := af.dial(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	var h rpc.HealthReply
	if err := af.call(ctx, c, rpc.MethodHealth, nil, &h, 0); err != nil {
		return err
	}
	if *ready && !h.Ready {
		return fmt.Errorf("%w: %s (%s): %s", errNotReady, h.NodeID, h.Role, h.Reason)
	}
	if *verbose {
		state := "ready"
		if !h.Ready {
			state = "not ready: " + h.Reason
		}
		_, err := io.WriteString(stdout, h.NodeID+" ("+h.Role+"): "+state+"\n")
		return err //nolint:wrapcheck // stdout
	}
	return nil
}
