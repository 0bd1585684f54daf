package main

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
)

// statusJSON runs kvnode status --json against addr and decodes it
// generically, so the test checks the JSON field names themselves.
func statusJSON(t *testing.T, addr string) map[string]any {
	t.Helper()
	out := mustVerb(t, "status", "--rpc", addr, "--json")
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return m
}

func TestStatus_ClusterLeaderAndFollower(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{})
	addrs := clusterRPC(t, c)
	leader := c.WaitLeader()
	c.Retry("set", func(ctx context.Context) error {
		return c.Store(leader, "mem", cluster.ReadLocal).Set(ctx, []drivers.Item{{Key: "a", Value: []byte("12345")}})
	})
	c.EnsureSame()
	follower := c.Followers(leader)[0]
	waitReady(t, c, addrs[follower])

	for _, i := range []int{leader, follower} {
		st := statusJSON(t, addrs[i])
		wantRole := "follower"
		if i == leader {
			wantRole = "leader"
		}
		if st["node_id"] != c.Nodes[i].ID || st["role"] != wantRole || st["leader_id"] != c.Nodes[leader].ID {
			t.Fatalf("node %d: node_id %v role %v leader_id %v", i, st["node_id"], st["role"], st["leader_id"])
		}
		for _, f := range []string{"term", "commit_index", "applied_index", "fsm_applied_index", "last_log_index"} {
			if v, ok := st[f].(float64); !ok || v < 1 {
				t.Fatalf("node %d: %s = %v", i, f, st[f])
			}
		}
		if st["ready"] != true {
			t.Fatalf("node %d not ready: %v", i, st["ready_reason"])
		}
		members, _ := st["members"].([]any)
		if len(members) != 3 {
			t.Fatalf("node %d: members %v", i, st["members"])
		}
		for _, m := range members {
			mm := m.(map[string]any)
			if mm["suffrage"] != "voter" || mm["id"] == "" || mm["address"] == "" {
				t.Fatalf("node %d: member %v", i, mm)
			}
			if _, ok := mm["last_contact_seconds"]; !ok {
				t.Fatalf("node %d: member without last_contact_seconds: %v", i, mm)
			}
		}
		storages, _ := st["storages"].([]any)
		if len(storages) != 2 {
			t.Fatalf("node %d: storages %v", i, st["storages"])
		}
		for _, s := range storages {
			sm := s.(map[string]any)
			if sm["replicated"] != true || sm["driver"] != testDrivers[sm["name"].(string)].Name {
				t.Fatalf("node %d: storage %v", i, sm)
			}
			if sm["name"] == "mem" && sm["keys"] != 1.0 {
				t.Fatalf("node %d: mem storage %v", i, sm)
			}
		}
		if i == follower {
			if v, ok := st["last_contact_seconds"].(float64); !ok || v < 0 {
				t.Fatalf("follower last_contact_seconds %v", st["last_contact_seconds"])
			}
		}
	}

	table := mustVerb(t, "status", "--rpc", addrs[leader])
	for _, want := range []string{
		"role            leader", "MEMBER", "SUFFRAGE", c.Nodes[leader].ID + " (self, leader)",
		"heartbeats ok", "STORAGE", "mem", "memory", "ready           yes",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("status table lacks %q:\n%s", want, table)
		}
	}
}

func TestHealth_ExitCodes(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{})
	addrs := clusterRPC(t, c)
	leader := c.WaitLeader()
	waitReady(t, c, addrs[leader])
	if code, out, errs := runVerb(t, "health", "--rpc", addrs[leader]); code != 0 || out != "" || errs != "" {
		t.Fatalf("health: exit %d, stdout %q, stderr %q (want 0 and silence)", code, out, errs)
	}
	if out := mustVerb(t, "health", "--rpc", addrs[leader], "--ready", "-v"); !strings.Contains(out, "(leader): ready") {
		t.Fatalf("health -v: %q", out)
	}

	// Without a quorum the survivor still answers, but is not ready.
	survivor := c.Followers(leader)[0]
	for i := range c.Nodes {
		if i != survivor {
			c.Kill(i)
		}
	}
	c.Poll("survivor not ready", func() string {
		if code, _, _ := runVerb(t, "health", "--rpc", addrs[survivor], "--ready"); code != 1 {
			return "still ready"
		}
		return ""
	})
	code, _, errs := runVerb(t, "health", "--rpc", addrs[survivor], "--ready")
	if code != 1 || !strings.Contains(errs, "not ready") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("health --ready without quorum: exit %d, stderr %q", code, errs)
	}
	if code, _, _ := runVerb(t, "health", "--rpc", addrs[survivor]); code != 0 {
		t.Fatalf("liveness without quorum: exit %d", code)
	}
	// Nothing answering fails liveness.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	_ = ln.Close()
	if code, _, errs := runVerb(t, "health", "--rpc", gone, "--timeout", "500ms"); code != 1 || errs == "" {
		t.Fatalf("health of a closed port: exit %d, %q", code, errs)
	}
}

// A node without a cluster section is standalone: always ready, sizes of
// its own storages, no backups.
func TestStatus_Standalone(t *testing.T) {
	addr := verbTestServerAdmin(t)
	mustVerb(t, "set", "--rpc", addr, "k", "value")
	st := statusJSON(t, addr)
	if st["node_id"] != "standalone" || st["role"] != "standalone" || st["ready"] != true {
		t.Fatalf("standalone status %v", st)
	}
	storages := st["storages"].([]any)
	if len(storages) != 1 || storages[0].(map[string]any)["keys"] != 1.0 || storages[0].(map[string]any)["replicated"] != false {
		t.Fatalf("storages %v", storages)
	}
	mustVerb(t, "health", "--rpc", addr, "--ready")
	table := mustVerb(t, "status", "--rpc", addr)
	if !strings.Contains(table, "role   standalone") || strings.Contains(table, "MEMBER") {
		t.Fatalf("standalone table:\n%s", table)
	}
	code, _, errs := runVerb(t, "snapshot", "save", t.TempDir()+"/b.kvn", "--rpc", addr)
	if code != 1 || !strings.Contains(errs, "snapshot needs a cluster") {
		t.Fatalf("standalone snapshot: exit %d, %q", code, errs)
	}
}
