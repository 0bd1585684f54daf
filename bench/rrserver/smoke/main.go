// Command smoke proves that a KV RPC server (rrserver or kvnode) answers: it stores one key with
// kv.Set, reads it back with kv.MGet over goridge's own client codec, and exits non-zero if the value
// does not come back. bench/run.sh uses it as a readiness probe before every measurement.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"strings"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
	goridgerpc "github.com/roadrunner-server/goridge/v3/pkg/rpc"
)

// errMismatch is returned when kv.MGet does not return what kv.Set stored.
var errMismatch = errors.New("smoke: kv.MGet did not return the stored value")

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	addr := fs.String("rpc", "tcp://127.0.0.1:6001", "server address")
	storage := fs.String("storage", "default", "kv storage name")
	timeout := fs.Duration("timeout", 5*time.Second, "deadline for the whole check")
	if err := fs.Parse(args); err != nil {
		return err
	}
	hostport := strings.TrimPrefix(*addr, "tcp://")

	conn, err := net.DialTimeout("tcp", hostport, *timeout)
	if err != nil {
		return fmt.Errorf("smoke: dial %s: %w", hostport, err)
	}
	// net/rpc has no per-call context, so the connection deadline bounds both calls.
	if err := conn.SetDeadline(time.Now().Add(*timeout)); err != nil {
		return fmt.Errorf("smoke: set deadline: %w", err)
	}
	client := rpc.NewClientWithCodec(goridgerpc.NewClientCodec(conn))
	defer client.Close()

	want := []byte(fmt.Sprintf("smoke-%d", time.Now().UnixNano()))
	set := &kvv1.Request{Storage: *storage, Items: []*kvv1.Item{{Key: "smoke:key", Value: want}}}
	if err := client.Call("kv.Set", set, &kvv1.Response{}); err != nil {
		return fmt.Errorf("smoke: kv.Set: %w", err)
	}

	get := &kvv1.Request{Storage: *storage, Items: []*kvv1.Item{{Key: "smoke:key"}, {Key: "smoke:absent"}}}
	got := &kvv1.Response{}
	if err := client.Call("kv.MGet", get, got); err != nil {
		return fmt.Errorf("smoke: kv.MGet: %w", err)
	}
	if len(got.GetItems()) != 1 || got.GetItems()[0].GetKey() != "smoke:key" ||
		!bytes.Equal(got.GetItems()[0].GetValue(), want) {
		return fmt.Errorf("%w: got %v", errMismatch, got.GetItems())
	}
	fmt.Printf("ok: %s storage %q answered kv.Set and kv.MGet\n", hostport, *storage)
	return nil
}
