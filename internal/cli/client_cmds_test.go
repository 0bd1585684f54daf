package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/rpc/rpctest"
)

// verbTestServer serves a real memory storage named "default" on a free
// loopback port until the test ends, and returns its address.
func verbTestServer(t testing.TB) string {
	t.Helper()
	return rpctest.ServeMemory(t, "")
}

// testCommands are this package's commands as kvnode lists them.
func testCommands() []Command {
	return []Command{
		{Name: "get", Run: Get}, {Name: "set", Run: Set}, {Name: "del", Run: Del}, {Name: "has", Run: Has},
		{Name: "ttl", Run: TTL}, {Name: "expire", Run: Expire}, {Name: "clear", Run: Clear},
		{Name: "status", Run: Status}, {Name: "health", Run: Health}, {Name: "snapshot", Run: Snapshot("test")},
		{Name: "events", Run: Events}, {Name: "bench", Run: Bench}, {Name: "tls", Run: TLS}, {Name: "keygen", Run: Keygen},
	}
}

// runVerb runs the commands' dispatcher in-process and returns its exit
// status and output.
func runVerb(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(t.Context(), testCommands(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// mustVerb runs a verb that has to succeed and returns its stdout.
func mustVerb(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := runVerb(t, args...)
	if code != 0 {
		t.Fatalf("kvnode %q: exit %d, stderr %q", args, code, errs)
	}
	return out
}

func TestVerbs_SetGetDel(t *testing.T) {
	addr := verbTestServer(t)
	mustVerb(t, "set", "--rpc", addr, "greeting", "hello world")
	mustVerb(t, "set", "k2", "two", "--rpc", addr) // flags after the arguments
	mustVerb(t, "set", "--rpc", addr, "--", "-dash", "v")

	if got := mustVerb(t, "get", "--rpc", addr, "greeting"); got != "hello world" {
		t.Errorf("get greeting = %q, want the raw value", got)
	}
	got := mustVerb(t, "get", "--rpc", addr, "greeting", "nope", "k2", "--", "-dash")
	if want := "greeting\thello world\nk2\ttwo\n-dash\tv\n"; got != want {
		t.Errorf("get of several keys = %q, want %q", got, want)
	}

	code, out, errs := runVerb(t, "get", "--rpc", addr, "nope")
	if code != 1 || out != "" || !strings.Contains(errs, `"nope": key not found`) {
		t.Errorf("get of a missing key: exit %d, stdout %q, stderr %q; want 1 and a message", code, out, errs)
	}

	mustVerb(t, "del", "--rpc", addr, "greeting", "nope")
	if code, _, _ := runVerb(t, "get", "--rpc", addr, "greeting"); code != 1 {
		t.Errorf("get after del: exit %d, want 1", code)
	}
	mustVerb(t, "clear", "--rpc", addr)
	if got := mustVerb(t, "get", "--rpc", addr, "k2", "--", "-dash"); got != "" {
		t.Errorf("get after clear = %q, want nothing", got)
	}
}

func TestVerbs_SetFromStdin(t *testing.T) {
	addr := verbTestServer(t)
	value := "line one\nline two\x00binary"
	var out, errb bytes.Buffer
	if err := runSetFrom(t.Context(), []string{"--rpc", addr, "blob", "-"}, strings.NewReader(value), &out, &errb); err != nil {
		t.Fatalf("set blob -: %v (stderr %q)", err, errb.String())
	}
	if got := mustVerb(t, "get", "--rpc", addr, "blob"); got != value {
		t.Errorf("get blob = %q, want %q", got, value)
	}
}

func TestVerbs_HasTTLExpire(t *testing.T) {
	addr := verbTestServer(t)
	const at = "2099-01-02T03:04:05+03:00"
	mustVerb(t, "set", "--rpc", addr, "plain", "1")
	mustVerb(t, "set", "--rpc", addr, "dated", "2", "--expires", at)

	if got := mustVerb(t, "has", "--rpc", addr, "plain"); got != "true\n" {
		t.Errorf("has plain = %q", got)
	}
	code, out, _ := runVerb(t, "has", "--rpc", addr, "plain", "nope")
	if code != 1 || out != "plain\ttrue\nnope\tfalse\n" {
		t.Errorf("has plain nope: exit %d, %q; want 1 and one line per key", code, out)
	}

	if got := mustVerb(t, "ttl", "--rpc", addr, "plain"); got != "no expiry\n" {
		t.Errorf("ttl plain = %q", got)
	}
	if got := mustVerb(t, "ttl", "--rpc", addr, "dated", "plain", "nope"); got != "dated\t"+at+"\nplain\tno expiry\n" {
		t.Errorf("ttl of several = %q", got)
	}
	if code, _, errs := runVerb(t, "ttl", "--rpc", addr, "nope"); code != 1 || !strings.Contains(errs, "key not found") {
		t.Errorf("ttl nope: exit %d, stderr %q", code, errs)
	}

	mustVerb(t, "expire", "--rpc", addr, "plain", "nope", "--ttl", "1h")
	got := strings.TrimSpace(mustVerb(t, "ttl", "--rpc", addr, "plain"))
	deadline, err := time.Parse(time.RFC3339, got)
	if err != nil {
		t.Fatalf("ttl after expire = %q: %v", got, err)
	}
	if d := time.Until(deadline); d < 50*time.Minute || d > 61*time.Minute {
		t.Errorf("expire --ttl 1h set a deadline %v away", d)
	}
	if got := mustVerb(t, "get", "--rpc", addr, "plain"); got != "1" {
		t.Errorf("expire changed the value to %q", got)
	}

	mustVerb(t, "set", "--rpc", addr, "short", "x", "--ttl", "-1s")
	if code, _, _ := runVerb(t, "has", "--rpc", addr, "short"); code != 1 {
		t.Errorf("a key set with a negative ttl still exists")
	}
}

func TestVerbs_Errors(t *testing.T) {
	addr := verbTestServer(t)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"get", "--rpc", addr, "--storage", "ghost", "k"}, 1, "no such storage: ghost"},
		{[]string{"get", "--rpc", addr}, 2, "at least one key"},
		{[]string{"set", "--rpc", addr, "k"}, 2, "need KEY and VALUE"},
		{[]string{"set", "--rpc", addr, "k", "v", "--ttl", "1s", "--expires", "2099-01-01T00:00:00Z"}, 2, "exclude each other"},
		{[]string{"set", "--rpc", addr, "k", "v", "--expires", "tomorrow"}, 2, "--expires"},
		{[]string{"expire", "--rpc", addr, "k"}, 2, "--ttl or --expires"},
		{[]string{"clear", "--rpc", addr, "extra"}, 2, "no arguments"},
		{[]string{"del", "--bogus", "k"}, 2, "bogus"},
		{[]string{"has", "--rpc", "http://x", "k"}, 1, "bad address"},
	} {
		code, _, errs := runVerb(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("kvnode %q: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.msg)
		}
	}
	if code, _, _ := runVerb(t, "get", "-h"); code != 0 {
		t.Errorf("get -h: exit %d, want 0", code)
	}
}

func TestVerbs_Timeout(t *testing.T) {
	// Nothing listens on port 1 of loopback: whether the dial is refused
	// or times out, the verb must fail, and within --timeout.
	code, _, errs := runVerb(t, "get", "--rpc", "tcp://127.0.0.1:1", "--timeout", "200ms", "k")
	if code != 1 || errs == "" {
		t.Errorf("get against nothing: exit %d, stderr %q", code, errs)
	}
}

func TestParseVerbArgs(t *testing.T) {
	fs, vf := newVerbFlagSet("x", "", &bytes.Buffer{})
	pos, err := parseVerbArgs(fs, []string{"a", "--storage", "s", "b", "--", "--rpc", "-"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pos, " ") != "a b --rpc -" || vf.storage != "s" || vf.rpc != defaultRPCAddr {
		t.Errorf("positional %q storage %q rpc %q", pos, vf.storage, vf.rpc)
	}
	fs, _ = newVerbFlagSet("x", "", &bytes.Buffer{})
	if _, err := parseVerbArgs(fs, []string{"--nope"}); !errors.Is(err, ErrUsage) {
		t.Errorf("unknown flag: %v, want ErrUsage", err)
	}
}
