package rpc

import (
	"bytes"
	"fmt"
	netrpc "net/rpc"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
)

// clockServer serves a memory storage whose clock the test moves.
func clockServer(t *testing.T) (*netrpc.Client, *atomic.Int64) {
	t.Helper()
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	st := drivers.NewStandalone(memory.New(), drivers.StandaloneOptions{
		Driver: "memory", SweepInterval: -1,
		Clock: func() time.Time { return time.Unix(0, now.Load()) },
	})
	t.Cleanup(func() { _ = st.Close() })
	srv := startServer(t, Config{}, nil, Storage{Name: "default", Driver: memory.Driver(), Store: st, Inline: true})
	return dialClient(t, srv.Server), &now
}

func set(t *testing.T, c *netrpc.Client, items ...*kvv1.Item) {
	t.Helper()
	mustCall(t, c, "kv.Set", &kvv1.Request{Storage: "default", Items: items})
}

// dump returns key=value/timeout for the keys that exist, sorted.
func dump(t *testing.T, c *netrpc.Client, keys ...string) []string {
	t.Helper()
	values := map[string]string{}
	for _, it := range mustCall(t, c, "kv.MGet", req("default", keys...)).GetItems() {
		values[it.GetKey()] = string(it.GetValue())
	}
	var out []string
	for _, it := range mustCall(t, c, "kv.TTL", req("default", keys...)).GetItems() {
		out = append(out, it.GetKey()+"="+values[it.GetKey()]+"/"+it.GetTimeout())
	}
	sort.Strings(out)
	has := mustCall(t, c, "kv.Has", req("default", keys...)).GetItems()
	if len(has) != len(out) || len(values) != len(out) {
		t.Fatalf("Has (%d), MGet (%d) and TTL (%d) disagree", len(has), len(values), len(out))
	}
	return out
}

func expect(t *testing.T, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("state\n got %v\nwant %v", got, want)
	}
}

func TestKV_MissingAndExpiredOmitted(t *testing.T) {
	c, now := clockServer(t)
	set(t, c, item("live", "1", ""), item("soon", "2", "2030-01-01T00:00:10Z"), item("past", "3", "2029-12-31T23:59:59Z"))
	expect(t, dump(t, c, "live", "soon", "past", "missing"), "live=1/", "soon=2/2030-01-01T00:00:10Z")
	now.Add(int64(10 * time.Second)) // exactly the deadline: expired
	expect(t, dump(t, c, "live", "soon", "past", "missing"), "live=1/")
}

func TestKV_TTLEchoesTimeout(t *testing.T) {
	c, _ := clockServer(t)
	timeouts := []string{"2030-06-01T12:00:00+03:00", "2030-06-01T12:00:00.123456789Z", "2031-01-01T00:00:00-07:30"}
	for i, tm := range timeouts {
		set(t, c, item(fmt.Sprintf("k%d", i), "v", tm))
	}
	set(t, c, item("forever", "v", ""))
	out := mustCall(t, c, "kv.TTL", req("default", "k0", "k1", "k2", "forever"))
	got := map[string]string{}
	for _, it := range out.GetItems() {
		got[it.GetKey()] = it.GetTimeout()
	}
	for i, tm := range timeouts {
		if got[fmt.Sprintf("k%d", i)] != tm {
			t.Errorf("TTL k%d = %q, want %q as sent", i, got[fmt.Sprintf("k%d", i)], tm)
		}
	}
	if tm, ok := got["forever"]; !ok || tm != "" {
		t.Errorf("TTL of a key without expiry = %q, %v; want present with \"\"", tm, ok)
	}
}

func TestKV_BadItemChangesNothing(t *testing.T) {
	c, _ := clockServer(t)
	set(t, c, item("a", "old", ""))
	before := dump(t, c, "a", "b", "c")

	for _, bad := range [][]*kvv1.Item{
		{item("a", "new", ""), item("b", "new", ""), item("c", "new", "10")},
		{item("a", "new", ""), item(" ", "new", ""), item("b", "new", "")},
		{item("b", "new", ""), item("", "new", "")},
	} {
		if _, e := call(t, c, "kv.Set", &kvv1.Request{Storage: "default", Items: bad}); e == "" {
			t.Fatalf("Set %v succeeded", bad)
		}
		expect(t, dump(t, c, "a", "b", "c"), before...)
	}
	for _, bad := range [][]*kvv1.Item{
		{item("a", "", "2031-01-01T00:00:00Z"), item("a", "", "")},
		{item("a", "", "2031-01-01T00:00:00Z"), item("a", "", "tomorrow")},
	} {
		if _, e := call(t, c, "kv.MExpire", &kvv1.Request{Storage: "default", Items: bad}); e == "" {
			t.Fatalf("MExpire %v succeeded", bad)
		}
		expect(t, dump(t, c, "a", "b", "c"), before...)
	}
	if _, e := call(t, c, "kv.Delete", req("default", "a", "")); e == "" {
		t.Fatal("Delete with a blank key succeeded")
	}
	expect(t, dump(t, c, "a", "b", "c"), before...)
}

func TestKV_EmptyItemsAreNoOps(t *testing.T) {
	c, _ := clockServer(t)
	set(t, c, item("a", "1", ""))
	for _, m := range []string{"kv.Has", "kv.MGet", "kv.TTL", "kv.Set", "kv.MExpire", "kv.Delete"} {
		if out := mustCall(t, c, m, req("default")); len(out.GetItems()) != 0 {
			t.Errorf("%s with no items returned %v", m, out.GetItems())
		}
	}
	expect(t, dump(t, c, "a"), "a=1/")
}

func TestKV_Methods(t *testing.T) {
	c, _ := clockServer(t)
	// Duplicates collapse; the last write wins.
	set(t, c, item("k", "1", ""), item("j", "x", ""), item("k", "2", "2031-01-01T00:00:00Z"))
	expect(t, dump(t, c, "k", "k", "j"), "j=x/", "k=2/2031-01-01T00:00:00Z")
	if n := len(mustCall(t, c, "kv.MGet", req("default", "k", "k", "k")).GetItems()); n != 1 {
		t.Fatalf("MGet of one key thrice returned %d items", n)
	}

	// MExpire changes existing keys only and keeps their values.
	mustCall(t, c, "kv.MExpire", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{
		item("j", "ignored", "2032-01-01T00:00:00Z"), item("ghost", "", "2032-01-01T00:00:00Z"),
	}})
	expect(t, dump(t, c, "k", "j", "ghost"), "j=x/2032-01-01T00:00:00Z", "k=2/2031-01-01T00:00:00Z")

	// An empty value is stored and comes back as an item with no value.
	set(t, c, item("empty", "", ""))
	out := mustCall(t, c, "kv.MGet", req("default", "empty"))
	if len(out.GetItems()) != 1 || len(out.GetItems()[0].GetValue()) != 0 {
		t.Fatalf("MGet of an empty value = %v", out.GetItems())
	}

	mustCall(t, c, "kv.Delete", req("default", "k", "missing"))
	expect(t, dump(t, c, "k", "j"), "j=x/2032-01-01T00:00:00Z")

	// Clear ignores its items and removes everything.
	mustCall(t, c, "kv.Clear", req("default", "nothing"))
	expect(t, dump(t, c, "k", "j", "empty"))
}

func TestKV_LargeValue(t *testing.T) {
	srv, _ := memoryServer(t)
	c := dialClient(t, srv.Server)
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16)
	big[len(big)-1] = 'Z'
	mustCall(t, c, "kv.Set", &kvv1.Request{Storage: "default", Items: []*kvv1.Item{{Key: "big", Value: big}}})
	out := mustCall(t, c, "kv.MGet", req("default", "big"))
	if len(out.GetItems()) != 1 || !bytes.Equal(out.GetItems()[0].GetValue(), big) {
		t.Fatal("3 MiB value did not round-trip")
	}
}

// TestKV_ValuesOwned pipelines many Sets so they share read buffers, then
// checks every stored value: none may alias a reused frame buffer.
func TestKV_ValuesOwned(t *testing.T) {
	srv, _ := memoryServer(t)
	nc := dialRaw(t, srv.Server)
	const n = 500
	var batch []byte
	for i := range n {
		v := bytes.Repeat([]byte{byte(i)}, 100+i%50)
		body := marshal(t, &kvv1.Request{Storage: "default", Items: []*kvv1.Item{{Key: fmt.Sprint(i), Value: v}}})
		batch = append(batch, rawFrame(0x80, uint32(i), "kv.Set", body)...)
	}
	go func() { _, _ = nc.Write(batch) }()
	for range n {
		if r := readReply(t, nc); r.flags != 0x80 {
			t.Fatalf("Set reply %#x %q", r.flags, r.body)
		}
	}
	c := dialClient(t, srv.Server)
	for i := range n {
		out := mustCall(t, c, "kv.MGet", req("default", fmt.Sprint(i)))
		want := bytes.Repeat([]byte{byte(i)}, 100+i%50)
		if len(out.GetItems()) != 1 || !bytes.Equal(out.GetItems()[0].GetValue(), want) {
			t.Fatalf("value %d corrupted: %v", i, out.GetItems())
		}
	}
}
