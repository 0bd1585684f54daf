package log

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/kvnode/kvnode/drivers"
)

func TestBatch_RoundTrip(t *testing.T) {
	samples := sampleEvents()
	events := []Event{samples["set"], samples["delete"], samples["clear"], samples["expire"], samples["mexpire"]}
	const now = 1_700_000_000_999_000_000
	b, err := EncodeBatch(now, events)
	if err != nil {
		t.Fatal(err)
	}
	if !IsBatch(b) {
		t.Fatal("not recognised as a batch")
	}
	got, err := DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range events {
		events[i].Op.Now = now // the batch's clock stamps every event in it
	}
	if !reflect.DeepEqual(got, events) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, events)
	}
	// A single event decodes to one.
	one, _ := Encode(samples["set"])
	got, err = DecodeEntry(one)
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], samples["set"]) {
		t.Fatalf("single entry: %+v, %v", got, err)
	}
}

func TestBatch_RefusesWhatItCannotTrust(t *testing.T) {
	if _, err := EncodeBatch(1, nil); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("empty batch: %v", err)
	}
	if _, err := EncodeBatch(1, []Event{{Op: drivers.Op{Kind: 0x7f}}}); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("unknown kind: %v", err)
	}
	good, err := EncodeBatch(7, []Event{sampleEvents()["set"], sampleEvents()["clear"]})
	if err != nil {
		t.Fatal(err)
	}
	inner, _ := EncodeBatch(7, []Event{sampleEvents()["clear"]})
	nested := append([]byte{Version, BatchOp, 14, 1, byte(len(inner))}, inner...)
	ignorable := []byte{Version, BatchOp, 14, 1, 4, Version, 0x90, 0, 0}
	for name, b := range map[string][]byte{
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(bytes.Clone(good), 0),
		"empty":          {Version, BatchOp, 14, 0},
		"count too big":  {Version, BatchOp, 14, 0x7f, 1, 2},
		"nested":         nested,
		"ignorable in":   ignorable,
	} {
		_, err := DecodeEntry(b)
		if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrIgnorable) {
			t.Errorf("%s: %v, want only ErrCorrupt", name, err)
		}
	}
}

// FuzzDecodeEntry checks that DecodeEntry never panics, fails only with
// the documented errors, and that a batch it decodes re-encodes to one
// that decodes the same.
func FuzzDecodeEntry(f *testing.F) {
	samples := sampleEvents()
	for _, evs := range [][]Event{{samples["set"], samples["clear"]}, {samples["delete"]}} {
		b, err := EncodeBatch(1_700_000_000_000_000_000, evs)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		evs, err := DecodeEntry(bytes.Clone(input))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrIgnorable) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		if !IsBatch(input) {
			return
		}
		b, err := EncodeBatch(evs[0].Op.Now, evs)
		if err != nil {
			t.Fatalf("decoded batch does not re-encode: %v", err)
		}
		again, err := DecodeEntry(b)
		if err != nil || !reflect.DeepEqual(again, evs) {
			t.Fatalf("re-encoded batch decodes to %+v (%v), want %+v", again, err, evs)
		}
	})
}

// The batch marker must never be an op an event can carry, or a single
// event of that op would decode as a batch (as an early OpEvict did).
func TestBatch_MarkerIsNoOp(t *testing.T) {
	for k := range 256 {
		if _, ok := shapeOf(drivers.OpKind(k)); ok && k == BatchOp {
			t.Fatalf("op kind %#x is the batch marker", k)
		}
	}
}
