package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/config"
	"github.com/kvnode/kvnode/drivers"
)

// TestServe_BoundedStorage serves a memory storage with max_memory: a
// write past it fails whole with the storage and the limit named, status
// shows the usage against the limit, and with lru the same writes evict
// instead.
func TestServe_BoundedStorage(t *testing.T) {
	path := writeConfig(t, `
version: "3"
rpc: {listen: "tcp://127.0.0.1:0"}
kv:
  strict:
    driver: memory
    config: {max_memory: 1KiB}
  cache:
    driver: memory
    config: {max_memory: 1KiB, eviction: lru}
`)
	r := startServe(t, config.Options{File: path})
	c := dialKV(t, r.addr)
	set := func(storage string, keys ...string) error {
		req := &kvv1.Request{Storage: storage}
		for _, k := range keys {
			req.Items = append(req.Items, &kvv1.Item{Key: k, Value: bytes.Repeat([]byte("v"), 100)})
		}
		return c.Call("kv.Set", req, &kvv1.Response{})
	}
	// 1024 / (10 + 100 + 32) holds 7 keys.
	for i := range 7 {
		if err := set("strict", fmt.Sprintf("key-%05d", i)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	err := set("strict", "key-00007", "key-00008")
	if err == nil || !strings.Contains(err.Error(), `storage "strict"`) || !strings.Contains(err.Error(), "max_memory 1KiB") {
		t.Fatalf("write past the limit: %v", err)
	}
	has := &kvv1.Response{}
	if err := c.Call("kv.Has", &kvv1.Request{Storage: "strict", Items: []*kvv1.Item{{Key: "key-00007"}}}, has); err != nil || len(has.GetItems()) != 0 {
		t.Fatalf("the refused write left %v (%v)", has.GetItems(), err)
	}
	for i := range 50 {
		if err := set("cache", fmt.Sprintf("key-%05d", i)); err != nil {
			t.Fatalf("lru write %d: %v", i, err)
		}
	}
	out := mustVerb(t, "status", "--rpc", r.addr)
	if !strings.Contains(out, "1KiB (") || !strings.Contains(out, ", reject") || !strings.Contains(out, ", lru") {
		t.Fatalf("status does not show the limits:\n%s", out)
	}
	var st cluster.Status
	if err := json.Unmarshal([]byte(mustVerb(t, "status", "--rpc", r.addr, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Storages {
		if s.MaxMemory != 1024 || s.Usage > 1024 || s.Usage == 0 {
			t.Errorf("status of %s: %+v", s.Name, s)
		}
		if s.Name == "cache" && s.Evicted != 43 {
			t.Errorf("cache evicted %d keys, want 43", s.Evicted)
		}
	}
}

// TestEvents_ShowsWhoDeletedAKey lists a bounded cluster's event log
// through the admin call: writes, the limit, and evictions with their
// reason and keys; --follow then prints a write made after it started.
func TestEvents_ShowsWhoDeletedAKey(t *testing.T) {
	per := drivers.EntryUsage(16, 100, false)
	c := clustertest.New(t, clustertest.Options{
		Storages: map[string]string{"mem": "memory"},
		Limits:   map[string]drivers.Limits{"mem": {MaxBytes: 20 * per, Policy: drivers.PolicyLRU}},
	})
	addrs := clusterRPCWith(t, c, config.RPCConfig{AdminToken: "events-token"})
	leader := c.WaitLeader()
	s := c.Store(leader, "mem", cluster.ReadLocal)
	for i := range 40 {
		c.Retry("write", func(ctx context.Context) error {
			return s.Set(ctx, []drivers.Item{{Key: fmt.Sprintf("key:%012d", i), Value: bytes.Repeat([]byte("v"), 100)}})
		})
	}
	c.EnsureSame()
	f := c.Followers(leader)[0]

	code, _, errs := runVerb(t, "events", "--rpc", addrs[f])
	if code != 1 || !strings.Contains(errs, "admin token required") {
		t.Fatalf("events without the token: exit %d, %q", code, errs)
	}
	out := mustVerb(t, "events", "--rpc", addrs[f], "--token", "events-token", "--storage", "mem", "--json")
	var sets, evicted int
	limit := false
	gone := map[string]bool{}
	var last uint64
	for line := range strings.Lines(out) {
		var ev cluster.EventRecord
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if ev.Index <= last || ev.Storage != "mem" || ev.Term == 0 || ev.Time.IsZero() {
			t.Fatalf("event %+v after index %d", ev, last)
		}
		last = ev.Index
		switch ev.Op {
		case "set":
			sets++
		case "limit":
			limit = strings.Contains(ev.Limits, "eviction lru")
		case "evict":
			if ev.Reason != "max_memory" || ev.KeyCount != len(ev.Keys) {
				t.Fatalf("eviction event %+v", ev)
			}
			for _, k := range ev.Keys {
				gone[k] = true
			}
			evicted += ev.KeyCount
		}
	}
	if sets != 40 || !limit || evicted != 20 {
		t.Fatalf("events show %d sets, limit %v, %d evictions; want 40, true, 20:\n%s", sets, limit, evicted, out)
	}
	for k := range gone {
		if code, _, _ := runVerb(t, "get", "--rpc", addrs[f], "--storage", "mem", k); code != 1 {
			t.Fatalf("%s is listed as evicted but still there", k)
		}
	}
	text := mustVerb(t, "events", "--rpc", addrs[f], "--token", "events-token", "--since", fmt.Sprint(last))
	if !strings.HasPrefix(text, fmt.Sprint(last)+" term=") || strings.Count(text, "\n") != 1 {
		t.Fatalf("events --since %d: %q", last, text)
	}

	// --follow prints what is applied after it started, then stops when
	// interrupted.
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"events", "--rpc", addrs[f], "--token", "events-token", "--since", fmt.Sprint(last + 1), "--follow"}, &stdout, &stderr)
	}()
	c.Retry("write while following", func(ctx context.Context) error {
		return s.Set(ctx, []drivers.Item{{Key: "followed", Value: []byte("x")}})
	})
	c.Poll("follow prints the write", func() string {
		if !strings.Contains(stdout.String(), " mem set followed") {
			return fmt.Sprintf("stdout %q stderr %q", stdout.String(), stderr.String())
		}
		return ""
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("events --follow exited %d after the interrupt: %s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("events --follow did not stop when interrupted")
	}
}

func TestEvents_StandaloneRefuses(t *testing.T) {
	addr := verbTestServerAdmin(t)
	code, _, errs := runVerb(t, "events", "--rpc", addr)
	if code != 1 || !strings.Contains(errs, "events need a cluster") {
		t.Fatalf("events on a standalone node: exit %d, %q", code, errs)
	}
}
