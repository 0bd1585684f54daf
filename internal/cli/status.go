package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kvnode/kvnode/client"
	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/rpc"
)

// adminFlags are the flags of the commands that call the kvnode service.
type adminFlags struct {
	rpc     string
	timeout time.Duration
	// auth is what the calls that export or replace data present; see
	// tokenFlags.
	auth      rpc.AdminAuth
	tokenFile string
}

// AdminTokenEnv names the environment variable the CLI takes the admin
// token from when no flag gives one: unlike --token, it does not show in
// the process list.
const AdminTokenEnv = "KVNODE_ADMIN_TOKEN" //nolint:gosec // the variable's name, not a credential

// tokenFlags adds --token and --token-file, for the commands whose calls
// need the node's rpc.admin_token.
func (af *adminFlags) tokenFlags(fs *flag.FlagSet) {
	fs.StringVar(&af.auth.Token, "token", "", "the node's rpc.admin_token (default $"+AdminTokenEnv+"; prefer it or --token-file: flags show in the process list)")
	fs.StringVar(&af.tokenFile, "token-file", "", "read the admin token from this `file`")
}

// resolveToken settles the token after parsing: --token, else
// --token-file, else $KVNODE_ADMIN_TOKEN, else none.
func (af *adminFlags) resolveToken() error {
	switch {
	case af.auth.Token != "":
	case af.tokenFile != "":
		b, err := os.ReadFile(af.tokenFile)
		if err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
		af.auth.Token = strings.TrimSpace(string(b))
	default:
		af.auth.Token = os.Getenv(AdminTokenEnv)
	}
	return nil
}

func newAdminFlagSet(name, synopsis string, timeout time.Duration, stderr io.Writer) (*flag.FlagSet, *adminFlags) {
	fs := NewFlagSet(name, synopsis, stderr)
	af := &adminFlags{}
	fs.StringVar(&af.rpc, "rpc", defaultRPCAddr, "RPC address of the node: tcp://host:port, host:port or unix:///path")
	fs.DurationVar(&af.timeout, "timeout", timeout, "deadline for connecting and each request")
	return fs, af
}

// dial connects one connection to the node within the timeout.
func (af *adminFlags) dial(ctx context.Context) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, af.timeout)
	defer cancel()
	c, err := client.Dial(ctx, af.rpc, client.WithPoolSize(1))
	if err != nil {
		return nil, err //nolint:wrapcheck // the client's errors name the address
	}
	return c, nil
}

// call makes one admin call with the timeout (at least min).
func (af *adminFlags) call(ctx context.Context, c *client.Client, method string, args, reply any, least time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, max(af.timeout, least))
	defer cancel()
	return adminErr(c.Call(ctx, method, args, reply))
}

// adminErr shows a server's refusal by its text alone (it already names
// the method), and says so when the server predates the admin service.
func adminErr(err error) error {
	var se *client.ServerError
	if !errors.As(err, &se) {
		return err
	}
	if strings.Contains(se.Text, "can't find service "+rpc.AdminService) {
		return fmt.Errorf("%s: the server has no %s service (RoadRunner, or an old kvnode)", se.Method, rpc.AdminService)
	}
	return errors.New(se.Text) //nolint:err113 // the server's message, verbatim
}

// Status prints a node's view of itself and the cluster.
func Status(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, af := newAdminFlagSet("status", "[--rpc ADDR] [--json]", 5*time.Second, stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
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
	var st cluster.Status
	if err := af.call(ctx, c, rpc.MethodStatus, nil, &st, 0); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st) //nolint:wrapcheck // stdout
	}
	return printStatus(stdout, st)
}

// printStatus renders a Status as aligned tables.
func printStatus(w io.Writer, st cluster.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	ready := "yes"
	if !st.Ready {
		ready = "no: " + st.ReadyReason
	}
	row("node", withAddr(st.NodeID, st.Address))
	row("role", st.Role)
	if st.Role != cluster.RoleStandalone {
		leader := "none"
		if st.LeaderID != "" {
			leader = withAddr(st.LeaderID, st.LeaderAddress)
		}
		row("leader", leader)
		row("term", strconv.FormatUint(st.Term, 10))
		row("commit index", strconv.FormatUint(st.CommitIndex, 10))
		row("applied index", fmt.Sprintf("%d (state machine %d)", st.AppliedIndex, st.FSMAppliedIndex))
		row("last log index", strconv.FormatUint(st.LastLogIndex, 10))
		if st.LastContactSeconds != nil {
			row("leader contact", ago(*st.LastContactSeconds))
		}
		row("leader changes", strconv.FormatUint(st.LeaderChanges, 10))
	}
	row("ready", ready)
	if len(st.Members) > 0 {
		row()
		row("MEMBER", "ADDRESS", "SUFFRAGE", "GOSSIP", "RPC", "LAST CONTACT")
		for _, m := range st.Members {
			id := m.ID
			switch {
			case m.Self && m.Leader:
				id += " (self, leader)"
			case m.Self:
				id += " (self)"
			case m.Leader:
				id += " (leader)"
			}
			row(id, m.Address, m.Suffrage, orDash(m.Gossip), orDash(m.RPCAddress), contact(m))
		}
	}
	if len(st.Storages) > 0 {
		row()
		row("STORAGE", "DRIVER", "REPLICATED", "KEYS", "BYTES", "USAGE", "LIMIT", "EVICTED")
		for _, s := range st.Storages {
			repl := "no"
			if s.Replicated {
				repl = "yes"
			}
			usage := "-"
			if s.Usage > 0 || s.Keys == 0 {
				usage = strconv.FormatInt(s.Usage, 10)
			}
			row(s.Name, orDash(s.Driver), repl, count(s.Keys), count(s.Bytes), usage, limitText(s), strconv.FormatInt(s.Evicted, 10))
		}
	}
	return tw.Flush() //nolint:wrapcheck // stdout
}

// limitText renders a storage's limits: "64MiB (51%), lru", "-" for none.
func limitText(s cluster.StorageStatus) string {
	var parts []string
	if s.MaxMemory > 0 {
		parts = append(parts, fmt.Sprintf("%s (%d%%)", drivers.FormatBytes(s.MaxMemory), s.Usage*100/s.MaxMemory))
	}
	if s.MaxKeys > 0 {
		parts = append(parts, fmt.Sprintf("%d keys (%d%%)", s.MaxKeys, s.Keys*100/s.MaxKeys))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ") + ", " + s.Eviction
}

func withAddr(id, addr string) string {
	if addr == "" {
		return id
	}
	return id + " (" + addr + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func count(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

// ago renders seconds as "1.2s ago".
func ago(s float64) string {
	d := time.Duration(s * float64(time.Second))
	return d.Round(time.Millisecond).String() + " ago"
}

// contact renders what the node knows of its contact with a member.
func contact(m cluster.MemberStatus) string {
	switch {
	case m.Self:
		return "self"
	case m.Heartbeat == cluster.HeartbeatFailing && m.LastContactSeconds != nil:
		return "heartbeats failing, last " + ago(*m.LastContactSeconds)
	case m.Heartbeat == cluster.HeartbeatFailing:
		return "heartbeats failing"
	case m.Heartbeat == cluster.HeartbeatOK:
		return "heartbeats ok"
	case m.LastContactSeconds != nil:
		return ago(*m.LastContactSeconds)
	default:
		return "-"
	}
}
