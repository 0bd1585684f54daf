package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
)

func TestVerifySnapshot(t *testing.T) {
	src := newPair(t)
	results(t, src, script(t))
	good := persist(t, src)

	info, err := VerifySnapshot(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if info.Index != src.AppliedIndex() || info.Size != int64(len(good)) || !slices.Equal(info.Storages, []string{"bolt", "mem"}) {
		t.Fatalf("info = %+v, want index %d, size %d, storages [bolt mem]", info, src.AppliedIndex(), len(good))
	}
	for name, b := range damagedCopies(good) {
		t.Run(name, func(t *testing.T) {
			if _, err := VerifySnapshot(bytes.NewReader(b)); !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("VerifySnapshot = %v, want ErrBadSnapshot", err)
			}
		})
	}
}

// damagedCopies returns variants of a good stream that must all be refused.
func damagedCopies(good []byte) map[string][]byte {
	out := map[string][]byte{
		"empty":          {},
		"truncated":      good[:len(good)-1],
		"no trailer":     good[:len(good)-8],
		"trailing bytes": append(bytes.Clone(good), 0),
		"bad magic":      append([]byte("KVNSNAQ"), good[7:]...),
	}
	for _, at := range []int{8, len(good) / 2, len(good) - 1} {
		b := bytes.Clone(good)
		b[at] ^= 0x01
		out[fmt.Sprintf("flip byte %d", at)] = b
	}
	return out
}

// A reindexed stream restores the same state at the new index, and the
// engines keep replaying the log that follows it.
func TestReindex(t *testing.T) {
	src := newPair(t)
	results(t, src, script(t))
	want := stateHash(t, src)
	good := persist(t, src)

	for _, index := range []uint64{1, 1 << 40} {
		t.Run(fmt.Sprint(index), func(t *testing.T) {
			var out bytes.Buffer
			info, err := Reindex(&out, bytes.NewReader(good), index, 0)
			if err != nil {
				t.Fatal(err)
			}
			if info.Index != src.AppliedIndex() || info.Size != int64(len(good)) || len(info.Storages) != 2 {
				t.Fatalf("info = %+v", info)
			}
			got, err := VerifySnapshot(bytes.NewReader(out.Bytes()))
			if err != nil {
				t.Fatalf("reindexed stream: %v", err)
			}
			if got.Index != index {
				t.Fatalf("reindexed header index %d, want %d", got.Index, index)
			}
			dst := newPair(t)
			if err := restore(dst, out.Bytes()); err != nil {
				t.Fatal(err)
			}
			if dst.AppliedIndex() != index {
				t.Fatalf("AppliedIndex = %d, want %d", dst.AppliedIndex(), index)
			}
			if h := stateHash(t, dst); !bytes.Equal(h, want) {
				t.Fatalf("state %x, want %x", h, want)
			}
		})
	}
	for name, b := range damagedCopies(good) {
		t.Run(name, func(t *testing.T) {
			if _, err := Reindex(&bytes.Buffer{}, bytes.NewReader(b), 7, 0); !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Reindex = %v, want ErrBadSnapshot", err)
			}
		})
	}
}

// recordingObserver keeps what an FSM reports.
type recordingObserver struct {
	mu        sync.Mutex
	batches   []int
	entries   int
	snapshots []error
	restores  []error
}

func (r *recordingObserver) ObserveApply(n int, _ time.Duration) {
	r.mu.Lock()
	r.batches = append(r.batches, n)
	r.mu.Unlock()
}

func (r *recordingObserver) ObserveAppliedEntry(time.Duration) {
	r.mu.Lock()
	r.entries++
	r.mu.Unlock()
}

func (r *recordingObserver) ObserveSnapshot(_ time.Duration, err error) {
	r.mu.Lock()
	r.snapshots = append(r.snapshots, err)
	r.mu.Unlock()
}

func (r *recordingObserver) ObserveRestore(_ time.Duration, err error) {
	r.mu.Lock()
	r.restores = append(r.restores, err)
	r.mu.Unlock()
}

func TestFSM_Observer(t *testing.T) {
	f := newPair(t)
	obs := &recordingObserver{}
	f.SetObserver(obs)
	logs := script(t)
	stamped := 0
	for i, l := range logs {
		if l.Type == raft.LogCommand && i%2 == 0 {
			l.AppendedAt = time.Now()
			stamped++
		}
	}
	results(t, f, logs)
	good := persist(t, f)
	if err := restore(f, good[:10]); err == nil {
		t.Fatal("a truncated stream restored")
	}
	if err := restore(f, good); err != nil {
		t.Fatal(err)
	}

	if !slices.Equal(obs.batches, []int{len(logs)}) {
		t.Fatalf("batches %v, want [%d]", obs.batches, len(logs))
	}
	if obs.entries != stamped {
		t.Fatalf("%d entries observed, want the %d the leader stamped", obs.entries, stamped)
	}
	if len(obs.snapshots) != 1 || obs.snapshots[0] != nil {
		t.Fatalf("snapshots %v, want one success", obs.snapshots)
	}
	if len(obs.restores) != 2 || !errors.Is(obs.restores[0], ErrBadSnapshot) || obs.restores[1] != nil {
		t.Fatalf("restores %v, want a failure then a success", obs.restores)
	}

	f.SetObserver(nil)
	results(t, f, []*raft.Log{cmd(100, encode(t, "mem", drivers.Op{Kind: drivers.OpClear, Now: base}))})
	if len(obs.batches) != 1 {
		t.Fatal("a removed observer was still called")
	}
}
