package fsm

import (
	"bytes"
	"encoding/binary"
	"hash/crc64"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
)

// The replicated clock is the largest Now of the entries applied: ticks
// move it without touching any engine, an entry stamped earlier (a leader
// whose clock is behind) never moves it back, and snapshots carry it.
func TestFSM_ClockFollowsTheLog(t *testing.T) {
	f := newPair(t)
	if f.Clock() != 0 {
		t.Fatalf("fresh clock %d", f.Clock())
	}
	before := stateHash(t, f)
	res := results(t, f, []*raft.Log{
		cmd(1, encode(t, "", drivers.Op{Kind: drivers.OpTick, Now: base + 5*sec})),
	})
	if res[0].Err() != nil {
		t.Fatalf("tick: %v", res[0].Err())
	}
	if f.Clock() != base+5*sec || f.AppliedIndex() != 1 {
		t.Fatalf("after a tick: clock %d applied %d", f.Clock(), f.AppliedIndex())
	}
	if !bytes.Equal(stateHash(t, f), before) {
		t.Fatal("a tick changed an engine")
	}
	results(t, f, []*raft.Log{
		cmd(2, encode(t, "mem", drivers.Op{Kind: drivers.OpSet, Now: base + 2*sec, Items: []drivers.Item{{Key: "k", Value: []byte("v")}}})),
	})
	if f.Clock() != base+5*sec {
		t.Fatalf("an entry stamped earlier moved the clock back to %d", f.Clock())
	}
	results(t, f, []*raft.Log{
		cmd(3, encode(t, "bolt", drivers.Op{Kind: drivers.OpDelete, Now: base + 9*sec, Keys: []string{"x"}})),
	})
	if f.Clock() != base+9*sec {
		t.Fatalf("clock %d, want the latest stamp", f.Clock())
	}

	snap := persist(t, f)
	dst := newPair(t)
	if err := restore(dst, snap); err != nil {
		t.Fatal(err)
	}
	if dst.Clock() != base+9*sec {
		t.Fatalf("restored clock %d", dst.Clock())
	}

	// A version 1 stream (no clock) still restores, with the clock unknown.
	old := downgrade(t, snap)
	dst = newPair(t)
	if err := restore(dst, old); err != nil {
		t.Fatalf("version 1 snapshot: %v", err)
	}
	if dst.Clock() != 0 || dst.AppliedIndex() != 3 || !bytes.Equal(stateHash(t, dst), stateHash(t, f)) {
		t.Fatalf("version 1 snapshot: clock %d applied %d", dst.Clock(), dst.AppliedIndex())
	}

	// A backup restored later never turns the cluster's clock back.
	var out bytes.Buffer
	if _, err := Reindex(&out, bytes.NewReader(old), 40, base+20*sec); err != nil {
		t.Fatal(err)
	}
	dst = newPair(t)
	if err := restore(dst, out.Bytes()); err != nil {
		t.Fatal(err)
	}
	if dst.Clock() != base+20*sec || dst.AppliedIndex() != 40 {
		t.Fatalf("reindexed: clock %d applied %d", dst.Clock(), dst.AppliedIndex())
	}
}

// downgrade rewrites a version 2 stream as version 1: no clock field.
func downgrade(t *testing.T, b []byte) []byte {
	t.Helper()
	h, err := readHeader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	newHdr := appendHeader(nil, h)
	old := append([]byte(magic), 1)
	old = binary.AppendUvarint(old, h.index)
	old = binary.AppendUvarint(old, h.count)
	body := b[len(newHdr) : len(b)-8]
	out := append(old, body...)
	return binary.BigEndian.AppendUint64(out, crc64.Checksum(out, crcTable))
}
