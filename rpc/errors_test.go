package rpc

import (
	"errors"
	"fmt"
	"testing"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memcached"
	"github.com/kvnode/kvnode/drivers/memory"
)

// TestServer_ErrorTexts checks every RoadRunner error text of part A4 over
// the wire, and that the connection keeps serving after each.
func TestServer_ErrorTexts(t *testing.T) { forEachNetwork(t, testErrorTexts) }

func testErrorTexts(t *testing.T, listen string) {
	st := newMemory(t)
	srv := startServer(t, Config{Listen: listen}, nil,
		Storage{Name: "default", Driver: memory.Driver(), Store: st, Inline: true},
		Storage{Name: "bolt", Driver: boltdb.Driver(), Store: st},
		Storage{Name: "red", Driver: redisDriver(), Store: st},
		Storage{Name: "mc", Driver: memcached.Driver(), Store: st},
	)
	c := dialClient(t, srv.Server)
	mustCall(t, c, "kv.Set", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("keep", "v", "")}})

	tests := []struct {
		method string
		in     *kvv1.Request
		want   string
	}{
		{"kv.Has", req(""), "rpc_has: no storage provided"},
		{"kv.Has", req("ghost", "a"), "rpc_has: no such storage: ghost"},
		{"kv.Set", req(""), "rpc_set: no such storage: "},
		{"kv.Set", req("ghost"), "rpc_set: no such storage: ghost"},
		{"kv.MGet", req(""), "rpc_mget: no storage provided"},
		{"kv.MGet", req("ghost"), "rpc_mget: no such storage: ghost"},
		{"kv.MExpire", req(""), "rpc_mexpire: no storage provided"},
		{"kv.MExpire", req("ghost"), "rpc_mexpire: no such storage: ghost"},
		{"kv.TTL", req(""), "rpc_ttl: no storage provided"},
		{"kv.TTL", req("ghost"), "rpc_ttl: no such storage: ghost"},
		{"kv.Delete", req(""), "rpc_delete: no storage provided"},
		{"kv.Delete", req("ghost"), "rpc_delete: no such storage: ghost"},
		{"kv.Clear", req(""), "rpc_clear: no storage provided"},
		{"kv.Clear", req("ghost"), "rpc_clear: no such storage: ghost"},

		{"kv.Has", req("default", "a", ""), "rpc_has: key can't be empty string:\n\tin_memory_plugin_has"},
		{"kv.MGet", req("default", "   "), "rpc_mget: key can't be empty string:\n\tin_memory_plugin_mget"},
		{"kv.TTL", req("default", "\t"), "rpc_ttl: key can't be empty string:\n\tin_memory_plugin_ttl"},
		{"kv.Delete", req("default", "keep", " "), "rpc_delete: key can't be empty string:\n\tin_memory_plugin_delete"},
		{"kv.Set", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("a", "1", ""), item(" ", "2", "")}},
			"rpc_set: key can't be empty string:\n\tin_memory_plugin_set"},
		{"kv.MGet", req("bolt", ""), "rpc_mget: key can't be empty string:\n\tboltdb_driver_mget"},
		{"kv.MGet", req("red", ""), "rpc_mget: key can't be empty string:\n\tredis_driver_mget"},
		{"kv.MGet", req("mc", ""), "rpc_mget: key can't be empty string:\n\tmemcached_plugin_mget"},

		{"kv.Set", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("a", "1", "10")}},
			`rpc_set: parsing time "10" as "2006-01-02T15:04:05Z07:00": cannot parse "10" as "2006"`},
		{"kv.MExpire", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("keep", "", "10")}},
			"rpc_mexpire:\n\tin_memory_plugin_mexpire: parsing time \"10\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"10\" as \"2006\""},
		{"kv.MExpire", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("keep", "", "")}},
			"rpc_mexpire:\n\tin_memory_plugin_mexpire: timeout for MExpire is empty or key is empty"},
		{"kv.MExpire", &kvv1.Request{Storage: "bolt", Items: []*kvv1.Item{item(" ", "", "2030-01-01T00:00:00Z")}},
			"rpc_mexpire:\n\tboltdb_driver_mexpire: timeout for MExpire is empty or key is empty"},

		{"kv.Nope", req("default"), "rpc: can't find method kv.Nope"},
		{"kv.has", req("default"), "rpc: can't find method kv.has"},
		{"nokv.Has", req("default"), "rpc: can't find service nokv.Has"},
		{"a.kv.Has", req("default"), "rpc: can't find service a.kv.Has"},
		{"kvHas", req("default"), "rpc: service/method request ill-formed: kvHas"},
		{"", req("default"), "rpc: service/method request ill-formed: "},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%d_%s", i, tt.method), func(t *testing.T) {
			_, got := call(t, c, tt.method, tt.in)
			if got != tt.want {
				t.Fatalf("error text\n got %q\nwant %q", got, tt.want)
			}
			// The connection stays open and nothing changed.
			out := mustCall(t, c, "kv.MGet", req("default", "keep", "a"))
			if len(out.GetItems()) != 1 || out.GetItems()[0].GetKey() != "keep" {
				t.Fatalf("after the error: MGet = %v, want only keep", out.GetItems())
			}
		})
	}
}

func TestErrStore(t *testing.T) {
	notSupported := fmt.Errorf("memcached: ttl: %w", drivers.ErrNotSupported)
	tests := []struct {
		m      method
		driver drivers.Driver
		err    error
		want   string
	}{
		{mTTL, memcached.Driver(), notSupported, "rpc_ttl:\n\tmemcached_plugin_ttl: not valid request for memcached, " +
			"see https://github.com/memcached/memcached/issues/239"},
		{mMGet, memcached.Driver(), notSupported, "rpc_mget: memcached: ttl: not supported by this driver"},
		{mSet, memory.Driver(), drivers.ErrClosed, "rpc_set: storage closed"},
		{mDelete, boltdb.Driver(), drivers.ErrClosed, "rpc_delete: storage closed"},
	}
	for _, tt := range tests {
		err := errStore(tt.m, tt.driver, tt.err)
		if err.Error() != tt.want {
			t.Errorf("errStore(%s, %s) = %q, want %q", methodName[tt.m], tt.driver.Name, err.Error(), tt.want)
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("errStore does not wrap %v", tt.err)
		}
	}
}

func TestParseListen(t *testing.T) {
	tests := []struct {
		dsn, network, addr string
		ok                 bool
	}{
		{"tcp://127.0.0.1:6001", "tcp", "127.0.0.1:6001", true},
		{"unix:///tmp/rr.sock", "unix", "/tmp/rr.sock", true},
		{"127.0.0.1:6001", "", "", false},
		{"udp://127.0.0.1:6001", "", "", false},
		{"tcp://", "", "", false},
		{"unix://", "", "", false},
	}
	for _, tt := range tests {
		network, addr, err := parseListen(tt.dsn)
		if (err == nil) != tt.ok || network != tt.network || addr != tt.addr {
			t.Errorf("parseListen(%q) = %q, %q, %v", tt.dsn, network, addr, err)
		}
		if _, err := New(Config{Listen: tt.dsn}, nil, nil, nil); (err == nil) != tt.ok {
			t.Errorf("New(%q) error = %v, want ok=%v", tt.dsn, err, tt.ok)
		}
	}
}

func TestNew_BadStorages(t *testing.T) {
	st := newMemory(t)
	for _, storages := range [][]Storage{
		{{Name: "", Driver: memory.Driver(), Store: st}},
		{{Name: "a", Driver: memory.Driver()}},
		{{Name: "a", Driver: memory.Driver(), Store: st}, {Name: "a", Driver: memory.Driver(), Store: st}},
	} {
		if _, err := New(Config{Listen: "tcp://127.0.0.1:0"}, storages, nil, nil); !errors.Is(err, ErrStorage) {
			t.Errorf("New(%v) error = %v, want ErrStorage", storages, err)
		}
	}
}
