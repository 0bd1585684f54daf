package rrplugin_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"

	"github.com/kvnode/kvnode/client"
)

// rrStorages is RoadRunner's kv section in these tests: four storages on
// the kvnode cluster (one under another name there, one the cluster does
// not have) and RoadRunner's own memory driver beside them.
const rrStorages = `kv:
  sessions: { driver: kvnode, config: { storage: sessions } }
  app:      { driver: kvnode, config: { storage: strict } }
  cache:    { driver: kvnode }
  ghost:    { driver: kvnode, config: { storage: nowhere } }
  pages:    { driver: kvnode, config: { storage: pages } }
  local:    { driver: memory, config: {} }
`

// TestRoadRunner drives a RoadRunner binary with the plugin, over
// RoadRunner's RPC as PHP does, against a three-node kvnode cluster of
// local processes. The subtests share the cluster and run in order; the
// last ones kill nodes.
func TestRoadRunner(t *testing.T) {
	cl := startCluster(t)
	leader := cl.leader(t)
	// The leader first: the plugin talks to it until it dies, so killing
	// it tests failover and a leader election at once.
	addrs := []string{leader.rpc}
	for _, n := range cl.nodes {
		if n != leader {
			addrs = append(addrs, n.rpc)
		}
	}
	rr := startRR(t, addrs, rrStorages+"  \n")
	php := rr.client(t)

	t.Run("methods", func(t *testing.T) { testMethods(t, cl, php) })
	t.Run("ttl", func(t *testing.T) { testTTL(t, php) })
	t.Run("atomic", func(t *testing.T) { testAtomic(t, php) })
	t.Run("errors", func(t *testing.T) { testErrors(t, php) })
	t.Run("metrics", func(t *testing.T) { testMetrics(t, rr, leader) })
	t.Run("kill", func(t *testing.T) { testKill(t, cl, rr, php, leader) })
	t.Run("no_leader", func(t *testing.T) { testNoLeader(t, cl, rr, php) })
}

// onEveryNode waits until every live node of the cluster holds want in
// storage (a local read on each node: replication is asynchronous to it).
func onEveryNode(t *testing.T, cl *kvCluster, storage string, want map[string]string) {
	t.Helper()
	for _, n := range cl.nodes {
		if n.proc.exited() {
			continue
		}
		c := dial(t, n.rpc, client.WithPoolSize(1))
		eventually(t, 10*time.Second, func() string {
			got, err := c.MGet(t.Context(), storage, slices.Collect(maps.Keys(want))...)
			if err != nil {
				return fmt.Sprintf("node %s: MGet: %v", n.id, err)
			}
			for k, v := range want {
				if string(got[k]) != v {
					return fmt.Sprintf("node %s: %s = %q, want %q", n.id, k, got[k], v)
				}
			}
			return ""
		})
	}
}

// goneOnEveryNode waits until no live node holds any of keys in storage.
func goneOnEveryNode(t *testing.T, cl *kvCluster, storage string, keys ...string) {
	t.Helper()
	for _, n := range cl.nodes {
		if n.proc.exited() {
			continue
		}
		c := dial(t, n.rpc, client.WithPoolSize(1))
		eventually(t, 10*time.Second, func() string {
			got, err := c.MGet(t.Context(), storage, keys...)
			if err != nil {
				return fmt.Sprintf("node %s: MGet: %v", n.id, err)
			}
			if len(got) > 0 {
				return fmt.Sprintf("node %s still holds %q", n.id, got)
			}
			return ""
		})
	}
}

func testMethods(t *testing.T, cl *kvCluster, php *client.Client) {
	ctx := t.Context()
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	err := php.Set(ctx, "sessions",
		client.Item{Key: "a", Value: []byte("alpha")},
		client.Item{Key: "empty", Value: nil},
		client.Item{Key: "t", Value: []byte("timed"), Timeout: later},
	)
	if err != nil {
		t.Fatalf("kv.Set through RoadRunner: %v", err)
	}
	// The write is on the cluster, on every node, under the same name.
	onEveryNode(t, cl, "sessions", map[string]string{"a": "alpha", "t": "timed", "empty": ""})

	vals, err := php.MGet(ctx, "sessions", "a", "empty", "t", "missing")
	if err != nil {
		t.Fatalf("kv.MGet: %v", err)
	}
	if len(vals) != 3 || string(vals["a"]) != "alpha" || string(vals["t"]) != "timed" || vals["empty"] == nil {
		t.Errorf("kv.MGet = %q, want a, t, and empty present with an empty value; missing left out", vals)
	}

	has, err := php.Has(ctx, "sessions", "a", "missing", "t")
	slices.Sort(has)
	if err != nil || !slices.Equal(has, []string{"a", "t"}) {
		t.Errorf("kv.Has = %q, %v; want [a t]", has, err)
	}

	ttls, err := php.TTL(ctx, "sessions", "a", "t", "missing")
	if err != nil || len(ttls) != 2 || ttls["a"] != "" || ttls["t"] != later {
		t.Errorf("kv.TTL = %q, %v; want a:\"\" t:%q", ttls, err, later)
	}

	// MExpire: an offset and the string echoed as sent; missing keys ignored.
	evenLater := time.Now().Add(2 * time.Hour).In(time.FixedZone("", 3*3600)).Format(time.RFC3339)
	if err := php.MExpire(ctx, "sessions", client.Item{Key: "a", Timeout: evenLater}, client.Item{Key: "missing", Timeout: evenLater}); err != nil {
		t.Fatalf("kv.MExpire: %v", err)
	}
	ttls, err = php.TTL(ctx, "sessions", "a", "missing")
	if err != nil || len(ttls) != 1 || ttls["a"] != evenLater {
		t.Errorf("kv.TTL after MExpire = %q, %v; want a:%q only", ttls, err, evenLater)
	}
	if vals, err := php.MGet(ctx, "sessions", "a"); err != nil || string(vals["a"]) != "alpha" {
		t.Errorf("MExpire changed the value: %q, %v", vals, err)
	}

	if err := php.Delete(ctx, "sessions", "a", "missing"); err != nil {
		t.Fatalf("kv.Delete: %v", err)
	}
	if has, err := php.Has(ctx, "sessions", "a", "t"); err != nil || !slices.Equal(has, []string{"t"}) {
		t.Errorf("kv.Has after Delete = %q, %v; want [t]", has, err)
	}

	// An empty item list does nothing and succeeds, as on RoadRunner's drivers.
	if err := php.Call(ctx, client.MethodSet, &kvv1.Request{Storage: "sessions"}, new(kvv1.Response)); err != nil {
		t.Errorf("kv.Set of nothing: %v", err)
	}

	// A storage under another name on the cluster, and one named as in RR.
	if err := php.Set(ctx, "app", client.Item{Key: "x", Value: []byte("1")}); err != nil {
		t.Fatalf("kv.Set on app: %v", err)
	}
	onEveryNode(t, cl, "strict", map[string]string{"x": "1"})
	if err := php.Set(ctx, "cache", client.Item{Key: "c", Value: []byte("2")}); err != nil {
		t.Fatalf("kv.Set on cache: %v", err)
	}
	onEveryNode(t, cl, "cache", map[string]string{"c": "2"})

	if err := php.Clear(ctx, "sessions"); err != nil {
		t.Fatalf("kv.Clear: %v", err)
	}
	goneOnEveryNode(t, cl, "sessions", "t", "empty")
	if vals, err := php.MGet(ctx, "cache", "c"); err != nil || len(vals) != 1 {
		t.Errorf("kv.Clear of sessions touched cache: %q, %v", vals, err)
	}
}

func testTTL(t *testing.T, php *client.Client) {
	ctx := t.Context()
	// PHP formats now+ttl in whole seconds with an offset (Y-m-d\TH:i:sP).
	soon := time.Now().Add(2 * time.Second).In(time.FixedZone("", -5*3600)).Format(time.RFC3339)
	if err := php.Set(ctx, "sessions", client.Item{Key: "short", Value: []byte("v"), Timeout: soon}, client.Item{Key: "stays", Value: []byte("v")}); err != nil {
		t.Fatalf("kv.Set: %v", err)
	}
	if ttls, err := php.TTL(ctx, "sessions", "short"); err != nil || ttls["short"] != soon {
		t.Errorf("kv.TTL = %q, %v; want the timeout as sent, %q", ttls, err, soon)
	}
	deadline, _ := time.Parse(time.RFC3339, soon)
	eventually(t, 10*time.Second, func() string {
		vals, err := php.MGet(ctx, "sessions", "short", "stays")
		if err != nil {
			return err.Error()
		}
		if _, ok := vals["short"]; ok {
			if time.Now().After(deadline.Add(100 * time.Millisecond)) {
				t.Fatalf("short served after its deadline %s", soon)
			}
			return "short not expired yet"
		}
		if time.Now().Before(deadline) {
			t.Fatalf("short gone before its deadline %s", soon)
		}
		if _, ok := vals["stays"]; !ok {
			t.Fatal("a key without a timeout expired")
		}
		return ""
	})
	// A timeout in the past removes the key at once (PSR-16: ttl <= 0).
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	if err := php.Set(ctx, "sessions", client.Item{Key: "stays", Value: []byte("v"), Timeout: past}); err != nil {
		t.Fatalf("kv.Set in the past: %v", err)
	}
	if vals, err := php.MGet(ctx, "sessions", "stays"); err != nil || len(vals) != 0 {
		t.Errorf("a key set with a past timeout: %q, %v; want it gone", vals, err)
	}
}

func testAtomic(t *testing.T, php *client.Client) {
	ctx := t.Context()
	// One bad item fails the whole batch and writes nothing.
	err := php.Set(ctx, "sessions", client.Item{Key: "ok1", Value: []byte("1")}, client.Item{Key: "  ", Value: []byte("2")}, client.Item{Key: "ok2", Value: []byte("3")})
	if !isServerText(err, "rpc_set: key can't be empty string:\n\tkvnode_driver_set") {
		t.Errorf("Set with a blank key: %v", err)
	}
	err = php.Set(ctx, "sessions", client.Item{Key: "ok1", Value: []byte("1")}, client.Item{Key: "ok2", Value: []byte("3"), Timeout: "10"})
	if !isServerText(err, `rpc_set: parsing time "10" as "2006-01-02T15:04:05Z07:00": cannot parse "10" as "2006"`) {
		t.Errorf("Set with a bad timeout: %v", err)
	}
	if vals, err := php.MGet(ctx, "sessions", "ok1", "ok2"); err != nil || len(vals) != 0 {
		t.Errorf("refused batches wrote %q (%v): a batch is all or nothing", vals, err)
	}

	// A reader never sees half of a multi-item write.
	const writes = 150
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		defer close(stop)
		for i := range writes {
			v := []byte(strconv.Itoa(i))
			if err := php.Set(ctx, "app", client.Item{Key: "p", Value: v}, client.Item{Key: "q", Value: v}, client.Item{Key: "r", Value: v}); err != nil {
				t.Errorf("Set %d: %v", i, err)
				return
			}
		}
	})
	for range 2 {
		wg.Go(func() {
			for reads := 0; reads < 10*writes; reads++ {
				select {
				case <-stop:
					return
				default:
				}
				vals, err := php.MGet(ctx, "app", "p", "q", "r")
				if err != nil {
					t.Errorf("MGet: %v", err)
					return
				}
				if len(vals) != 0 && (len(vals) != 3 || !bytes.Equal(vals["p"], vals["q"]) || !bytes.Equal(vals["q"], vals["r"])) {
					t.Errorf("MGet saw half a write: %q", vals)
					return
				}
			}
		})
	}
	wg.Wait()
}

// isServerText reports whether err is RoadRunner's error reply with
// exactly text.
func isServerText(err error, text string) bool {
	var se *client.ServerError
	return errors.As(err, &se) && se.Text == text
}

func serverText(err error) string {
	var se *client.ServerError
	if errors.As(err, &se) {
		return se.Text
	}
	return fmt.Sprintf("not a server reply: %v", err)
}

func testErrors(t *testing.T, php *client.Client) {
	ctx := t.Context()
	// RoadRunner's own refusals are untouched.
	_, err := php.Has(ctx, "nope", "k")
	if !isServerText(err, "rpc_has: no such storage: nope") {
		t.Errorf("unknown RR storage: %q", serverText(err))
	}
	// Blank keys: RoadRunner's text with the driver's operation.
	for _, tc := range []struct {
		call func() error
		want string
	}{
		{func() error { _, err := php.Has(ctx, "sessions", ""); return err }, "rpc_has: key can't be empty string:\n\tkvnode_driver_has"},
		{func() error { _, err := php.MGet(ctx, "sessions", "k", " "); return err }, "rpc_mget: key can't be empty string:\n\tkvnode_driver_mget"},
		{func() error { _, err := php.TTL(ctx, "sessions", ""); return err }, "rpc_ttl: key can't be empty string:\n\tkvnode_driver_ttl"},
		{func() error { return php.Delete(ctx, "sessions", "") }, "rcp_delete: key can't be empty string:\n\tkvnode_driver_delete"},
		{func() error { return php.MExpire(ctx, "sessions", client.Item{Key: "k"}) }, "rpc_mexpire:\n\tkvnode_driver_mexpire: timeout for MExpire is empty or key is empty"},
	} {
		if err := tc.call(); !isServerText(err, tc.want) {
			t.Errorf("got %q, want %q", serverText(err), tc.want)
		}
	}
	// memcached on the cluster has no TTL: the PHP client's getTtl looks
	// for "_plugin_ttl" to throw NotImplementedException, and finds it.
	if err := php.Set(ctx, "pages", client.Item{Key: "p", Value: []byte("1")}); err != nil {
		t.Fatalf("kv.Set on a memcached storage of the cluster: %v", err)
	}
	_, err = php.TTL(ctx, "pages", "p")
	if text := serverText(err); !strings.HasPrefix(text, "rpc_ttl:\n\tkvnode_driver_ttl: node ") || !strings.Contains(text, "memcached_plugin_ttl: not valid request for memcached") {
		t.Errorf("kv.TTL on memcached through the plugin: %q", text)
	}
	// A storage the cluster does not have: PHP's StorageException matches
	// "no such storage", and the text says which node said so.
	_, err = php.MGet(ctx, "ghost", "k")
	if text := serverText(err); !strings.HasPrefix(text, "rpc_mget:\n\tkvnode_driver_mget: node tcp://127.0.0.1:") ||
		!strings.HasSuffix(text, ": rpc_mget: no such storage: nowhere") {
		t.Errorf("storage missing on the cluster: %q", text)
	}
}

func testMetrics(t *testing.T, rr *rrServer, leader *kvNode) {
	if v := rr.metric(t, "rr_kvnode_calls_total", "storage", "sessions", "method", "set"); v < 1 {
		t.Errorf("rr_kvnode_calls_total{storage=sessions,method=set} = %v, want at least 1", v)
	}
	if v := rr.metric(t, "rr_kvnode_errors_total", "storage", "sessions", "method", "has", "kind", "bad_request"); v < 1 {
		t.Errorf("rr_kvnode_errors_total{kind=bad_request} = %v, want at least 1", v)
	}
	if v := rr.metric(t, "rr_kvnode_errors_total", "storage", "nowhere", "method", "mget", "kind", "no_such_storage"); v < 1 {
		t.Errorf("rr_kvnode_errors_total{storage=nowhere,kind=no_such_storage} = %v, want at least 1", v)
	}
	if v := rr.metric(t, "rr_kvnode_active_node", "addr", leader.rpc); v != 1 {
		t.Errorf("rr_kvnode_active_node{addr=%s} = %v, want 1 (the first address)", leader.rpc, v)
	}
	if v := rr.metric(t, "rr_kvnode_failovers_total", "storage", "sessions"); v > 0 {
		t.Errorf("rr_kvnode_failovers_total = %v before any node failed", v)
	}
}
