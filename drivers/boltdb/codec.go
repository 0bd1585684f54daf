package boltdb

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"fmt"
)

// gobBytesType is the gob wire type id of []byte (5), zig-zag encoded, as it
// appears in front of every top-level []byte value.
const gobBytesType = 0x0a

// encodeValue returns v encoded exactly as encoding/gob's Encoder encodes a
// []byte as the first value of a fresh stream, which is how RoadRunner stores
// values. It is written by hand because a gob.Encoder per value costs several
// allocations; TestEncodeValueMatchesGob pins it to encoding/gob.
func encodeValue(v []byte) []byte {
	n := uint64(len(v))
	body := 2 + gobUintLen(n) + len(v) // type id, singleton delta, length, bytes
	out := make([]byte, 0, gobUintLen(uint64(body))+body)
	out = appendGobUint(out, uint64(body))
	out = append(out, gobBytesType, 0)
	out = appendGobUint(out, n)
	return append(out, v...)
}

// decodeValue is the inverse of encodeValue. Anything it does not recognise
// is handed to encoding/gob, so any valid gob []byte stream is accepted.
func decodeValue(raw []byte) ([]byte, error) {
	if v, ok := decodeValueFast(raw); ok {
		return v, nil
	}
	var v []byte
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: value is not gob-encoded bytes: %w", ErrCorrupt, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

func decodeValueFast(raw []byte) ([]byte, bool) {
	data, ok := decodeValueFastNoCopy(raw)
	if !ok {
		return nil, false
	}
	return bytes.Clone(data), true
}

// valueLen is the length of the decoded value, without copying it.
func valueLen(raw []byte) int {
	if v, ok := decodeValueFastNoCopy(raw); ok {
		return len(v)
	}
	return len(raw)
}

func decodeValueFastNoCopy(raw []byte) ([]byte, bool) {
	body, rest, ok := readGobUint(raw)
	if !ok || body != uint64(len(rest)) || len(rest) < 3 || rest[0] != gobBytesType || rest[1] != 0 {
		return nil, false
	}
	n, data, ok := readGobUint(rest[2:])
	if !ok || n != uint64(len(data)) {
		return nil, false
	}
	return data, true
}

// gob encodes an unsigned integer below 128 as one byte, and anything else
// as the negated byte count followed by the big-endian bytes.
func gobUintLen(x uint64) int {
	if x < 0x80 {
		return 1
	}
	n := 1
	for ; x > 0; x >>= 8 {
		n++
	}
	return n
}

func appendGobUint(b []byte, x uint64) []byte {
	if x < 0x80 {
		return append(b, byte(x))
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], x)
	i := 0
	for buf[i] == 0 {
		i++
	}
	b = append(b, byte(-(8 - i)))
	return append(b, buf[i:]...)
}

func readGobUint(b []byte) (uint64, []byte, bool) {
	if len(b) == 0 {
		return 0, nil, false
	}
	c := b[0]
	if c < 0x80 {
		return uint64(c), b[1:], true
	}
	n := int(-int8(c))
	if n < 1 || n > 8 || len(b) < 1+n {
		return 0, nil, false
	}
	var x uint64
	for _, d := range b[1 : 1+n] {
		x = x<<8 | uint64(d)
	}
	return x, b[1+n:], true
}

// encodeTTL lays out a kvnode_ttl record: deadline, then the timeout string.
func encodeTTL(deadline int64, timeout string) []byte {
	out := make([]byte, 8, 8+len(timeout))
	binary.BigEndian.PutUint64(out, uint64(deadline))
	return append(out, timeout...)
}

func decodeTTL(raw []byte) (deadline int64, timeout string, err error) {
	if len(raw) < 8 {
		return 0, "", fmt.Errorf("%w: ttl record of %d bytes", ErrCorrupt, len(raw))
	}
	return int64(binary.BigEndian.Uint64(raw)), string(raw[8:]), nil
}

// expiryKey is the kvnode_expiry index key: deadline first, so that bbolt's
// byte order is deadline order (deadlines are never negative once stored).
func expiryKey(deadline int64, key []byte) []byte {
	out := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(out, uint64(deadline))
	return append(out, key...)
}

func encodeUint64(x uint64) []byte {
	out := make([]byte, 8)
	binary.BigEndian.PutUint64(out, x)
	return out
}

func decodeUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
