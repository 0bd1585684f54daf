package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/rpc"
)

// eventsWait is how long one --follow call lets the node wait for new
// events before answering with none (the server caps it).
const eventsWait = 5 * time.Second

// Events prints the decoded events still in a node's raft log, from
// --since on, and with --follow the new ones as they are applied, until
// interrupted. It asks a page at a time and holds nothing between pages,
// so a slow terminal costs the node nothing: entries compacted away before
// they were read are reported as skipped, on stderr.
func Events(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, af := newAdminFlagSet("events", "[--rpc ADDR] [--storage S] [--since INDEX] [--follow] [--json]", eventsWait+5*time.Second, stderr)
	af.tokenFlags(fs)
	storage := fs.String("storage", "", "only this storage's events")
	since := fs.Uint64("since", 0, "first log `index` to show (default: the oldest the log still holds)")
	follow := fs.Bool("follow", false, "keep printing events as they are applied, until interrupted")
	asJSON := fs.Bool("json", false, "print one JSON object per event (JSON lines)")
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr(fs, "unexpected argument %q", fs.Arg(0))
	}
	if err := af.resolveToken(); err != nil {
		return err
	}
	c, err := af.dial(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	enc := json.NewEncoder(stdout)
	next := *since
	for {
		q := rpc.EventsArgs{AdminAuth: af.auth, Since: next, Storage: *storage}
		if *follow {
			q.Wait = eventsWait
		}
		var page cluster.EventsPage
		if err := af.call(ctx, c, rpc.MethodEvents, q, &page, q.Wait+5*time.Second); err != nil {
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil // interrupted while following
			}
			return err
		}
		if page.Skipped > 0 {
			fmt.Fprintf(stderr, "kvnode events: %d log entries from index %d were compacted before they were read: skipped\n",
				page.Skipped, page.Next-page.Skipped)
		}
		for _, ev := range page.Events {
			if *asJSON {
				err = enc.Encode(ev)
			} else {
				_, err = io.WriteString(stdout, formatEvent(ev)+"\n")
			}
			if err != nil {
				return err //nolint:wrapcheck // stdout
			}
		}
		next = max(next, page.Next)
		if !*follow && next > page.Applied {
			return nil
		}
	}
}

// formatEvent renders one event as a line: index, term, time, storage, op,
// keys and, for expire and evict, why.
func formatEvent(ev cluster.EventRecord) string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(ev.Index, 10))
	b.WriteString(" term=" + strconv.FormatUint(ev.Term, 10))
	b.WriteString(" " + ev.Time.Format(time.RFC3339Nano))
	if ev.Storage != "" {
		b.WriteString(" " + ev.Storage)
	}
	b.WriteString(" " + ev.Op)
	if ev.KeyCount > 0 {
		b.WriteString(" " + strings.Join(ev.Keys, ","))
		if more := ev.KeyCount - len(ev.Keys); more > 0 {
			fmt.Fprintf(&b, " (+%d more)", more)
		}
	}
	if ev.Reason != "" {
		b.WriteString(" reason=" + strconv.Quote(ev.Reason))
	}
	if ev.Limits != "" {
		b.WriteString(" limits=" + strconv.Quote(ev.Limits))
	}
	return b.String()
}
