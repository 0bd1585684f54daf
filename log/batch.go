package log

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// A batch is one log entry carrying several events: concurrent writes a
// leader coalesces, so that one raft entry, one log write and one FSM
// apply serve them all. Each event in it is still applied on its own,
// atomically, with its own result, in the order of the batch.
//
//	[version = 1][BatchOp][now:varint][count:uvarint] count × (len:uvarint, an event's encoding)
//
// now is the proposing leader's clock for every event of the batch: the Now
// inside each event's encoding is ignored, so a leader can splice events a
// follower encoded into a batch without encoding them again. A batch never
// holds a batch. An older replica cannot apply one (BatchOp
// is not ignorable), so a leader writes batches only once every member
// reports LogVersion (cluster/versions.go).
const BatchOp = 0x40

// LogVersion is what this build can apply: 1 single events, 2 batches too.
// Nodes report it to the leader, which writes only what all can apply.
const LogVersion = 2

// minEventSize is the smallest encoded event: version, op, storage length
// and a one-byte clock.
const minEventSize = 4

// EncodeBatch returns the encoding of events as one entry stamped now. It
// fails for an event Encode refuses, or for none at all.
func EncodeBatch(now int64, events []Event) ([]byte, error) {
	raws := make([][]byte, len(events))
	for i := range events {
		var err error
		if raws[i], err = Encode(events[i]); err != nil {
			return nil, err
		}
	}
	return JoinBatch(now, raws)
}

// JoinBatch returns the batch entry stamped now of events already encoded
// (by Encode; it checks only that each is a single event).
func JoinBatch(now int64, raws [][]byte) ([]byte, error) {
	if len(raws) == 0 {
		return nil, fmt.Errorf("%w: empty batch", ErrInvalidEvent)
	}
	size := 2 + varintLen(now) + uvarintLen(uint64(len(raws)))
	for _, r := range raws {
		if len(r) < 2 || IsBatch(r) {
			return nil, fmt.Errorf("%w: a batch holds single events", ErrInvalidEvent)
		}
		size += uvarintLen(uint64(len(r))) + len(r)
	}
	dst := make([]byte, 0, size)
	dst = append(dst, Version, BatchOp)
	dst = binary.AppendVarint(dst, now)
	dst = binary.AppendUvarint(dst, uint64(len(raws)))
	for _, r := range raws {
		dst = binary.AppendUvarint(dst, uint64(len(r)))
		dst = append(dst, r...)
	}
	return dst, nil
}

// IsBatch reports whether b is a batch entry (its events still need
// DecodeEntry to be checked).
func IsBatch(b []byte) bool { return len(b) >= 2 && b[0] == Version && b[1] == BatchOp }

// DecodeEntry decodes a log entry, a single event or a batch, into its
// events. Errors are Decode's: ErrCorrupt for anything malformed (in a
// batch: any event in it), ErrIgnorable for a single event of an unknown
// ignorable kind. An unknown ignorable event inside a batch is corrupt: a
// batch is only written for replicas that know every event in it.
func DecodeEntry(b []byte) ([]Event, error) { return decodeEntry(b, true) }

// DecodeEntryShared is DecodeEntry whose events' values alias b, as
// DecodeShared's do: for an FSM whose engines copy what they keep.
func DecodeEntryShared(b []byte) ([]Event, error) { return decodeEntry(b, false) }

func decodeEntry(b []byte, copyValues bool) ([]Event, error) {
	if !IsBatch(b) {
		e, err := decode(b, copyValues)
		if err != nil {
			return nil, err
		}
		return []Event{e}, nil
	}
	d := decoder{b: b, off: 2}
	now := d.varint("batch now")
	n := d.count("batch count", minEventSize+1)
	if d.err == nil && n == 0 {
		d.fail("batch count", "empty batch")
	}
	if d.err != nil {
		return nil, d.err
	}
	events := make([]Event, 0, n)
	for i := range n {
		raw := d.raw("batch event")
		if d.err != nil {
			return nil, d.err
		}
		if IsBatch(raw) {
			return nil, fmt.Errorf("%w: batch event %d is a batch", ErrCorrupt, i)
		}
		e, err := decode(raw, copyValues)
		if err != nil {
			// %v: inside a batch nothing is ignorable, only corrupt.
			return nil, fmt.Errorf("%w: batch event %d: %v", ErrCorrupt, i, err) //nolint:errorlint // see above
		}
		e.Op.Now = now
		events = append(events, e)
	}
	if d.off != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes after the batch", ErrCorrupt, len(b)-d.off)
	}
	return slices.Clip(events), nil
}
