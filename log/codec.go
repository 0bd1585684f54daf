package log

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/kvnode/kvnode/drivers"
)

// The encoding of an Event:
//
//	[version = 1][op = drivers.OpKind][body]
//	body  = storage:str  now:varint  payload
//	payload for Set, MExpire, Expire = count:uvarint  count × (key:str value:str timeout:str deadline:varint)
//	payload for Delete               = count:uvarint  count × key:str
//	payload for Evict                = reason:uvarint  seq:uvarint  count:uvarint  count × (key:str deadline:varint digest:uvarint)
//	payload for Limit                = max_bytes:uvarint  max_keys:uvarint  policy:uvarint
//	payload for Clear, Tick          = nothing
//	str   = len:uvarint bytes
//
// varint is zig-zag (encoding/binary), so negative clocks and deadlines
// survive. Nothing may follow the payload.

// Smallest encodings, used to bound a count by the bytes left so that a
// corrupt count cannot make Decode allocate more than the input justifies.
const (
	minItemSize   = 4 // four empty or one-byte fields
	minKeySize    = 1
	minVictimSize = 3
)

// Encode returns the encoding of e. It fails only for an event that
// ErrInvalidEvent describes.
func Encode(e Event) ([]byte, error) {
	return AppendEncode(nil, e)
}

// AppendEncode appends the encoding of e to dst, growing it at most once,
// and returns the extended slice (dst unchanged on error).
func AppendEncode(dst []byte, e Event) ([]byte, error) {
	shape, ok := shapeOf(e.Op.Kind)
	switch {
	case !ok:
		return dst, fmt.Errorf("%w: op kind %d", ErrInvalidEvent, e.Op.Kind)
	case shape != payloadItems && len(e.Op.Items) > 0:
		return dst, fmt.Errorf("%w: %s carries no items, got %d", ErrInvalidEvent, e.Op.Kind, len(e.Op.Items))
	case shape != payloadKeys && len(e.Op.Keys) > 0:
		return dst, fmt.Errorf("%w: %s carries no keys, got %d", ErrInvalidEvent, e.Op.Kind, len(e.Op.Keys))
	case shape != payloadVictims && len(e.Op.Victims) > 0:
		return dst, fmt.Errorf("%w: %s carries no victims, got %d", ErrInvalidEvent, e.Op.Kind, len(e.Op.Victims))
	case shape == payloadLimits && (e.Op.Limits.MaxBytes < 0 || e.Op.Limits.MaxKeys < 0):
		return dst, fmt.Errorf("%w: negative limits %+v", ErrInvalidEvent, e.Op.Limits)
	}
	dst = slices.Grow(dst, encodedSize(e))
	dst = append(dst, Version, byte(e.Op.Kind))
	dst = appendStr(dst, e.Storage)
	dst = binary.AppendVarint(dst, e.Op.Now)
	switch shape {
	case payloadItems:
		dst = binary.AppendUvarint(dst, uint64(len(e.Op.Items)))
		for i := range e.Op.Items {
			it := &e.Op.Items[i]
			dst = appendStr(dst, it.Key)
			dst = binary.AppendUvarint(dst, uint64(len(it.Value)))
			dst = append(dst, it.Value...)
			dst = appendStr(dst, it.Timeout)
			dst = binary.AppendVarint(dst, it.Deadline)
		}
	case payloadKeys:
		dst = binary.AppendUvarint(dst, uint64(len(e.Op.Keys)))
		for _, k := range e.Op.Keys {
			dst = appendStr(dst, k)
		}
	case payloadVictims:
		dst = binary.AppendUvarint(dst, uint64(e.Op.Reason))
		dst = binary.AppendUvarint(dst, e.Op.Seq)
		dst = binary.AppendUvarint(dst, uint64(len(e.Op.Victims)))
		for i := range e.Op.Victims {
			v := &e.Op.Victims[i]
			dst = appendStr(dst, v.Key)
			dst = binary.AppendVarint(dst, v.Deadline)
			dst = binary.AppendUvarint(dst, v.Digest)
		}
	case payloadLimits:
		l := e.Op.Limits
		dst = binary.AppendUvarint(dst, uint64(l.MaxBytes))
		dst = binary.AppendUvarint(dst, uint64(l.MaxKeys))
		dst = binary.AppendUvarint(dst, uint64(l.Policy))
	}
	return dst, nil
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func varintLen(x int64) int { return uvarintLen(uint64(x<<1) ^ uint64(x>>63)) }

func strLen(n int) int { return uvarintLen(uint64(n)) + n }

// encodedSize is the exact length AppendEncode adds for a valid e.
func encodedSize(e Event) int {
	n := 2 + strLen(len(e.Storage)) + varintLen(e.Op.Now)
	shape, _ := shapeOf(e.Op.Kind)
	switch shape {
	case payloadItems:
		n += uvarintLen(uint64(len(e.Op.Items)))
		for i := range e.Op.Items {
			it := &e.Op.Items[i]
			n += strLen(len(it.Key)) + strLen(len(it.Value)) + strLen(len(it.Timeout)) + varintLen(it.Deadline)
		}
	case payloadKeys:
		n += uvarintLen(uint64(len(e.Op.Keys)))
		for _, k := range e.Op.Keys {
			n += strLen(len(k))
		}
	case payloadVictims:
		n += uvarintLen(uint64(e.Op.Reason)) + uvarintLen(e.Op.Seq) + uvarintLen(uint64(len(e.Op.Victims)))
		for i := range e.Op.Victims {
			v := &e.Op.Victims[i]
			n += strLen(len(v.Key)) + varintLen(v.Deadline) + uvarintLen(v.Digest)
		}
	case payloadLimits:
		l := e.Op.Limits
		n += uvarintLen(uint64(l.MaxBytes)) + uvarintLen(uint64(l.MaxKeys)) + uvarintLen(uint64(l.Policy))
	case payloadNone:
	}
	return n
}

// Decode parses an entry written by Encode. The event shares no memory
// with b: values are copied, because engines keep them.
//
// Errors: ErrIgnorable (wrapped) for an unknown operation with IgnorableBit
// set, in which case the returned event carries only Op.Kind; ErrCorrupt
// (wrapped, with the offset and field) for anything else it cannot parse.
// Use errors.Is.
func Decode(b []byte) (Event, error) { return decode(b, true) }

// DecodeShared is Decode whose item values alias b instead of being
// copied: for the state machine, whose engines copy what they keep (the
// memory engine into its slabs, boltdb into its pages) while the raft
// entry b is still held. It saves a copy of every value written, on every
// node.
func DecodeShared(b []byte) (Event, error) { return decode(b, false) }

func decode(b []byte, copyValues bool) (Event, error) {
	if len(b) < 2 {
		return Event{}, fmt.Errorf("%w: %d bytes, want at least 2", ErrCorrupt, len(b))
	}
	if b[0] != Version {
		return Event{}, fmt.Errorf("%w: version %d, want %d", ErrCorrupt, b[0], Version)
	}
	kind := drivers.OpKind(b[1])
	shape, ok := shapeOf(kind)
	if !ok {
		if b[1]&IgnorableBit != 0 {
			return Event{Op: drivers.Op{Kind: kind}}, fmt.Errorf("%w: op %#x", ErrIgnorable, b[1])
		}
		return Event{}, fmt.Errorf("%w: unknown op %#x", ErrCorrupt, b[1])
	}
	d := decoder{b: b, off: 2, copyValues: copyValues}
	var e Event
	e.Op.Kind = kind
	e.Storage = d.str("storage")
	e.Op.Now = d.varint("now")
	switch shape {
	case payloadItems:
		e.Op.Items = d.items()
	case payloadKeys:
		if n := d.count("key count", minKeySize); n > 0 {
			e.Op.Keys = make([]string, n)
			for i := range e.Op.Keys {
				e.Op.Keys[i] = d.str("key")
			}
		}
	case payloadVictims:
		e.Op.Reason = drivers.Reason(d.small("reason"))
		e.Op.Seq = d.uvarint("seq")
		e.Op.Victims = d.victims()
	case payloadLimits:
		e.Op.Limits.MaxBytes = d.nonNegative("max bytes")
		e.Op.Limits.MaxKeys = d.nonNegative("max keys")
		e.Op.Limits.Policy = drivers.Policy(d.small("policy"))
	case payloadNone:
	}
	if d.err == nil && d.off != len(b) {
		d.fail("end", "%d trailing bytes", len(b)-d.off)
	}
	if d.err != nil {
		return Event{}, d.err
	}
	return e, nil
}

// decoder reads fields off b; the first error sticks and every later read
// returns a zero value, so callers check once at the end.
type decoder struct {
	b          []byte
	off        int
	err        error
	copyValues bool
}

func (d *decoder) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at offset %d: %s", ErrCorrupt, field, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail(field, "bad uvarint")
		return 0
	}
	d.off += n
	return x
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail(field, "bad varint")
		return 0
	}
	d.off += n
	return x
}

// raw returns the next length-prefixed field, bounded by the input left.
// The slice aliases the input.
func (d *decoder) raw(field string) []byte {
	n := d.uvarint(field)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail(field, "length %d exceeds the %d bytes left", n, len(d.b)-d.off)
		return nil
	}
	p := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return p
}

func (d *decoder) str(field string) string { return string(d.raw(field)) }

// count reads an element count and checks that the input left can hold
// that many elements of at least minSize bytes each.
func (d *decoder) count(field string, minSize int) int {
	n := d.uvarint(field)
	if d.err != nil {
		return 0
	}
	if n > uint64((len(d.b)-d.off)/minSize) {
		d.fail(field, "%d elements cannot fit in the %d bytes left", n, len(d.b)-d.off)
		return 0
	}
	return int(n)
}

func (d *decoder) items() []drivers.Item {
	n := d.count("item count", minItemSize)
	if n == 0 {
		return nil
	}
	items := make([]drivers.Item, n)
	var timeout string
	for i := range items {
		it := &items[i]
		it.Key = d.str("key")
		if v := d.raw("value"); len(v) > 0 {
			it.Value = v
			if d.copyValues {
				it.Value = slices.Clone(v)
			}
		}
		// Items of one write usually share their timeout: reuse the string
		// instead of allocating it again (the comparison does not allocate).
		if t := d.raw("timeout"); string(t) == timeout {
			it.Timeout = timeout
		} else {
			timeout = string(t)
			it.Timeout = timeout
		}
		it.Deadline = d.varint("deadline")
		if d.err != nil {
			return nil
		}
	}
	return items
}

// small reads a uvarint that must fit a byte (a reason, a policy).
func (d *decoder) small(field string) uint8 {
	x := d.uvarint(field)
	if x > 0xff {
		d.fail(field, "%d out of range", x)
		return 0
	}
	return uint8(x)
}

// nonNegative reads a uvarint that must fit an int64.
func (d *decoder) nonNegative(field string) int64 {
	x := d.uvarint(field)
	if x > math.MaxInt64 {
		d.fail(field, "%d out of range", x)
		return 0
	}
	return int64(x)
}

func (d *decoder) victims() []drivers.Victim {
	n := d.count("victim count", minVictimSize)
	if n == 0 {
		return nil
	}
	vs := make([]drivers.Victim, n)
	for i := range vs {
		vs[i].Key = d.str("key")
		vs[i].Deadline = d.varint("deadline")
		vs[i].Digest = d.uvarint("digest")
		if d.err != nil {
			return nil
		}
	}
	return vs
}
