package log

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// A follower whose log conflicts with a new leader's has its tail cut
// (raft's DeleteRange up to the last index) and then receives the
// leader's entries. Every entry before the cut must stay readable: a
// leader that cannot read an entry a lagging peer needs replicates to it
// neither entries nor (the error not being ErrLogNotFound) a snapshot, and
// the peer never catches up. raft-wal v0.4.0 sealed the cut segment
// without its index ("sealed segment has no index block"; raft-wal#31),
// seen in a jepsen run with -log-store=wal: a wiped node waited forever.
func TestWAL_EntriesBeforeATruncatedTailStayReadable(t *testing.T) {
	for _, reopen := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), walDir)
		w, err := openWALDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		store := func(from, to, term uint64) {
			t.Helper()
			var logs []*raft.Log
			for i := from; i <= to; i++ {
				logs = append(logs, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte{byte(i)}})
			}
			if err := w.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
		}
		store(1, 100, 1)
		if err := w.DeleteRange(90, 100); err != nil {
			t.Fatal(err)
		}
		store(90, 120, 2)
		if reopen {
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if w, err = openWALDir(dir); err != nil {
				t.Fatal(err)
			}
		}
		for _, i := range []uint64{1, 50, 89, 90, 120} {
			var l raft.Log
			if err := w.GetLog(i, &l); err != nil || l.Index != i {
				t.Fatalf("reopened %t: entry %d = %+v, %v", reopen, i, l, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
