package rpc

import (
	"bytes"
	"testing"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
	"github.com/roadrunner-server/goridge/v3/pkg/frame"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/memory"
)

var testStorages = map[string]*storage{"default": {name: "default", driver: memory.Driver()}}

// scramble overwrites b, as the server does when it reuses a read buffer.
func scramble(b []byte) {
	for i := range b {
		b[i] = '#'
	}
}

// TestDecode_OwnsMemory checks that nothing decoded points into the frame
// buffer, on every decoding path: Stores keep values and keys.
func TestDecode_OwnsMemory(t *testing.T) {
	fast := marshal(t, &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("key", "value", "2030-01-01T00:00:00Z")}})
	// An unknown field makes the fast decoder give up: proto.Unmarshal then
	// decodes (and must copy too).
	slow := protowire.AppendTag(bytes.Clone(fast), 9, protowire.BytesType)
	slow = protowire.AppendString(slow, "unknown")
	for _, tt := range []struct {
		name  string
		codec byte
		body  []byte
	}{
		{"proto fast", frame.CodecProto, fast},
		{"proto fallback", frame.CodecProto, slow},
		{"json", frame.CodecJSON, []byte(`{"storage":"default","items":[{"key":"key","value":"dmFsdWU=","timeout":"2030-01-01T00:00:00Z"}]}`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &request{m: mSet, codec: tt.codec}
			body := bytes.Clone(tt.body)
			if err := decodeBody(body, r, testStorages, DefaultMaxItems); err != nil {
				t.Fatal(err)
			}
			scramble(body)
			want := []drivers.Item{{Key: "key", Value: []byte("value"), Timeout: "2030-01-01T00:00:00Z"}}
			if r.storage != "default" || r.st == nil || len(r.items) != 1 ||
				r.items[0].Key != want[0].Key || !bytes.Equal(r.items[0].Value, want[0].Value) || r.items[0].Timeout != want[0].Timeout {
				t.Fatalf("decoded %q %+v, want default %+v", r.storage, r.items, want)
			}
		})
	}
}

func TestDecode_ValuesOnlyForSet(t *testing.T) {
	body := marshal(t, &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("k", "v", "")}})
	for _, m := range []method{mHas, mMGet, mTTL, mDelete, mMExpire} {
		r := &request{m: m, codec: frame.CodecProto}
		if err := decodeBody(body, r, testStorages, DefaultMaxItems); err != nil || len(r.items) != 1 || r.items[0].Value != nil {
			t.Errorf("%s: err %v items %+v: values are only decoded for Set", methodName[m], err, r.items)
		}
	}
	// Clear ignores its items, so none are kept.
	r := &request{m: mClear, codec: frame.CodecProto}
	if err := decodeBody(body, r, testStorages, DefaultMaxItems); err != nil || len(r.items) != 0 || r.storage != "default" {
		t.Errorf("kv.Clear: err %v storage %q items %+v", err, r.storage, r.items)
	}
}

// TestEncode_MatchesProto compares the hand-written reply encoding with
// proto.Marshal of the same kv.v1.Response.
func TestEncode_MatchesProto(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 300) // two-byte length varints
	items := []drivers.Item{
		{Key: "a", Value: []byte("1"), Timeout: "2030-01-01T00:00:00Z"},
		{Key: "empty", Value: []byte{}},
		{Key: string(big), Value: big, Timeout: string(big)},
		{Key: "ключ", Value: []byte{0, 1, 2}},
	}
	cases := []struct {
		m   method
		res result
	}{
		{mHas, result{keys: []string{"a", "ключ", string(big)}}},
		{mMGet, result{items: items}},
		{mTTL, result{items: items}},
		{mMGet, result{}},
	}
	for _, tt := range cases {
		want, err := proto.Marshal(toPB(tt.m, tt.res))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendResultProto(nil, tt.m, tt.res); !bytes.Equal(got, want) {
			t.Errorf("%s\n got % x\nwant % x", methodName[tt.m], got, want)
		}
	}
}
