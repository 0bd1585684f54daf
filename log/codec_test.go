package log

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/kvnode/kvnode/drivers"
)

// sampleEvents covers every operation, with the edge values the encoding
// must carry: empty and binary values, negative clocks, shared timeouts.
func sampleEvents() map[string]Event {
	return map[string]Event{
		"set": {Storage: "default", Op: drivers.Op{Kind: drivers.OpSet, Now: 1_700_000_000_000_000_000, Items: []drivers.Item{
			{Key: "a", Value: []byte("1"), Timeout: "2030-01-01T00:00:00Z", Deadline: 1_893_456_000_000_000_000},
			{Key: "b", Value: []byte{0, 0xff, '\n'}, Timeout: "2030-01-01T00:00:00Z", Deadline: 1_893_456_000_000_000_000},
			{Key: "c", Value: nil},
			{Key: "ключ", Value: bytes.Repeat([]byte("x"), 300), Timeout: "1969-01-01T00:00:00Z", Deadline: 1},
		}}},
		"set-empty-storage": {Op: drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{{Key: "k"}}}},
		"mexpire": {Storage: "sessions", Op: drivers.Op{Kind: drivers.OpMExpire, Now: 42, Items: []drivers.Item{
			{Key: "a", Timeout: "2030-01-01T00:00:00+02:00", Deadline: 1_893_448_800_000_000_000},
		}}},
		"delete":      {Storage: "default", Op: drivers.Op{Kind: drivers.OpDelete, Now: -5, Keys: []string{"a", "b", "a"}}},
		"delete-none": {Storage: "default", Op: drivers.Op{Kind: drivers.OpDelete, Now: 1}},
		"clear":       {Storage: "default", Op: drivers.Op{Kind: drivers.OpClear, Now: 9}},
		"expire": {Storage: "default", Op: drivers.Op{Kind: drivers.OpExpire, Now: 100, Items: []drivers.Item{
			{Key: "a", Deadline: 99}, {Key: "b", Deadline: -1},
		}}},
		"tick": {Op: drivers.Op{Kind: drivers.OpTick, Now: 1_700_000_000_123_456_789}},
		"evict": {Storage: "cache", Op: drivers.Op{Kind: drivers.OpEvict, Now: 7, Reason: drivers.ReasonMemory, Seq: 3<<32 | 9, Victims: []drivers.Victim{
			{Key: "a", Deadline: 0, Digest: 100<<32 | 0xdeadbeef}, {Key: "b", Deadline: 1_893_456_000_000_000_000, Digest: 0},
		}}},
		"limit": {Storage: "cache", Op: drivers.Op{Kind: drivers.OpLimit, Now: 8, Limits: drivers.Limits{
			MaxBytes: 64 << 20, MaxKeys: 1000, Policy: drivers.PolicyLRU,
		}}},
	}
}

func TestEvent_RoundTrip(t *testing.T) {
	for name, e := range sampleEvents() {
		t.Run(name, func(t *testing.T) {
			b, err := Encode(e)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if len(b) != encodedSize(e) {
				t.Fatalf("encoded %d bytes, encodedSize says %d", len(b), encodedSize(e))
			}
			if b[0] != Version || b[1] != byte(e.Op.Kind) {
				t.Fatalf("header % x, want version %d op %d", b[:2], Version, e.Op.Kind)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
			}
		})
	}
}

func TestAppendEncode_AppendsToDst(t *testing.T) {
	e := sampleEvents()["set"]
	prefix := []byte("prefix")
	b, err := AppendEncode(prefix, e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("prefix")) {
		t.Fatalf("prefix lost: %q", b[:6])
	}
	got, err := Decode(b[len(prefix):])
	if err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("Decode after prefix: %+v, %v", got, err)
	}
}

func TestDecode_DoesNotAliasInput(t *testing.T) {
	e := sampleEvents()["set"]
	b, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xAA
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("decoded event changed with its input:\n got %+v\nwant %+v", got, e)
	}
}

// TestDecodeShared_AliasesValuesOnly checks that DecodeShared decodes what
// Decode does, with values (and only values) still in the input.
func TestDecodeShared_AliasesValuesOnly(t *testing.T) {
	for name, e := range sampleEvents() {
		b, err := Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeShared(b)
		if err != nil || !reflect.DeepEqual(got, e) {
			t.Fatalf("%s: DecodeShared = %+v, %v; want %+v", name, got, err, e)
		}
		for _, it := range got.Op.Items {
			if len(it.Value) > 0 && !overlaps(it.Value, b) {
				t.Fatalf("%s: value of %q was copied", name, it.Key)
			}
		}
	}
}

func overlaps(v, b []byte) bool {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	return p >= start && p < start+uintptr(len(b))
}

func TestDecode_SharesRepeatedTimeout(t *testing.T) {
	event := func(t1, t2 string) []byte {
		b, err := Encode(Event{Storage: "s", Op: drivers.Op{Kind: drivers.OpSet, Items: []drivers.Item{
			{Key: "key1", Value: []byte("v"), Timeout: t1}, {Key: "key2", Value: []byte("v"), Timeout: t2},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	shared := event("2030-01-01T00:00:00Z", "2030-01-01T00:00:00Z")
	distinct := event("2030-01-01T00:00:00Z", "2031-01-01T00:00:00Z")
	got, err := Decode(shared)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.StringData(got.Op.Items[0].Timeout) != unsafe.StringData(got.Op.Items[1].Timeout) {
		t.Fatal("a repeated timeout was allocated twice")
	}
	as := testing.AllocsPerRun(50, func() { _, _ = Decode(shared) })
	ad := testing.AllocsPerRun(50, func() { _, _ = Decode(distinct) })
	if as != ad-1 {
		t.Fatalf("allocations: shared timeout %v, distinct %v; want one fewer", as, ad)
	}
}

func TestDecode_IgnorableUnknownOp(t *testing.T) {
	for _, op := range []byte{0x80, 0x82, 0x90, 0xff} {
		e, err := Decode([]byte{Version, op, 0xde, 0xad})
		if !errors.Is(err, ErrIgnorable) {
			t.Fatalf("op %#x: err %v, want ErrIgnorable", op, err)
		}
		if errors.Is(err, ErrCorrupt) {
			t.Fatalf("op %#x: ignorable error also matches ErrCorrupt", op)
		}
		if e.Op.Kind != drivers.OpKind(op) {
			t.Fatalf("op %#x: kind %d", op, e.Op.Kind)
		}
	}
}

func TestDecode_Corrupt(t *testing.T) {
	valid, err := Encode(sampleEvents()["set"])
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":               {},
		"version only":        {Version},
		"unknown version":     append([]byte{2}, valid[1:]...),
		"version zero":        append([]byte{0}, valid[1:]...),
		"unknown op":          {Version, 0x06},
		"op zero":             {Version, 0x00},
		"trailing byte":       append(append([]byte{}, valid...), 0),
		"storage too long":    {Version, byte(drivers.OpClear), 0x05, 'a', 'b', 0x00},
		"huge storage length": {Version, byte(drivers.OpClear), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"uvarint overflow": {Version, byte(drivers.OpClear),
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"no now":         {Version, byte(drivers.OpClear), 0x00},
		"huge count":     {Version, byte(drivers.OpSet), 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0},
		"count > bytes":  {Version, byte(drivers.OpSet), 0x00, 0x00, 0x02, 0, 0, 0, 0},
		"key count > by": {Version, byte(drivers.OpDelete), 0x00, 0x00, 0x03, 0, 0},
		"clear trailing": {Version, byte(drivers.OpClear), 0x00, 0x00, 0x00},
	}
	for i := range len(valid) - 1 {
		cases[fmt.Sprintf("truncated to %d", i)] = valid[:i]
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			e, err := Decode(b)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode(% x) = %+v, %v; want ErrCorrupt", b, e, err)
			}
			if !reflect.DeepEqual(e, Event{}) {
				t.Fatalf("corrupt entry returned a partial event %+v", e)
			}
		})
	}
}

func TestEncode_Invalid(t *testing.T) {
	cases := map[string]Event{
		"unknown kind":      {Op: drivers.Op{Kind: 0x42}},
		"zero kind":         {},
		"ignorable kind":    {Op: drivers.Op{Kind: 0x90}},
		"set with keys":     {Op: drivers.Op{Kind: drivers.OpSet, Keys: []string{"a"}}},
		"expire with keys":  {Op: drivers.Op{Kind: drivers.OpExpire, Keys: []string{"a"}}},
		"delete with items": {Op: drivers.Op{Kind: drivers.OpDelete, Items: []drivers.Item{{Key: "a"}}}},
		"clear with keys":   {Op: drivers.Op{Kind: drivers.OpClear, Keys: []string{"a"}}},
		"clear with items":  {Op: drivers.Op{Kind: drivers.OpClear, Items: []drivers.Item{{Key: "a"}}}},
		"evict with items":  {Op: drivers.Op{Kind: drivers.OpEvict, Items: []drivers.Item{{Key: "a"}}}},
		"set with victims":  {Op: drivers.Op{Kind: drivers.OpSet, Victims: []drivers.Victim{{Key: "a"}}}},
		"negative limit":    {Op: drivers.Op{Kind: drivers.OpLimit, Limits: drivers.Limits{MaxBytes: -1}}},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			dst := []byte("x")
			b, err := AppendEncode(dst, e)
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("err %v, want ErrInvalidEvent", err)
			}
			if !bytes.Equal(b, []byte("x")) {
				t.Fatalf("dst changed on error: %q", b)
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	e := benchEvent()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendEncode(buf[:0], e); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecode(b *testing.B) {
	data, err := Encode(benchEvent())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// benchEvent is a typical multi-item Set: 16 keys of 100-byte values with
// one shared timeout.
func benchEvent() Event {
	items := make([]drivers.Item, 16)
	for i := range items {
		items[i] = drivers.Item{
			Key: "session:" + strings.Repeat("k", 8) + string(rune('a'+i)), Value: bytes.Repeat([]byte{byte(i)}, 100),
			Timeout: "2030-01-01T00:00:00Z", Deadline: 1_893_456_000_000_000_000,
		}
	}
	return Event{Storage: "default", Op: drivers.Op{Kind: drivers.OpSet, Now: 1_700_000_000_000_000_000, Items: items}}
}
