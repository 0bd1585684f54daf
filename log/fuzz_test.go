package log

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode checks that Decode never panics, that every error is one of
// the two documented kinds, and that whatever decodes re-encodes to no more
// bytes and decodes to an equal event that does not share the input's
// memory. Seeds live in testdata/fuzz/FuzzDecode; f.Add adds one per sample.
func FuzzDecode(f *testing.F) {
	for _, e := range sampleEvents() {
		b, err := Encode(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		data := bytes.Clone(input) // scribbled on below; the engine owns input
		e, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrIgnorable) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		enc, err := Encode(e)
		if err != nil {
			t.Fatalf("decoded %+v does not re-encode: %v", e, err)
		}
		if len(enc) > len(data) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(data), len(enc))
		}
		for i := range data {
			data[i] ^= 0xff // a decoded event that aliased data would change now
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("round trip differs:\n first %+v\nsecond %+v", e, again)
		}
	})
}
