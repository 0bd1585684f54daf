package log

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// A node can switch its raft log store: the log, term and vote move to the
// new store at the next open, and back.
func TestStores_SwitchingLogStoreMigratesTheLog(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStores(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 1200; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 3, Type: raft.LogCommand, Data: []byte{byte(i), byte(i >> 8)}})
	}
	if err := s.Log.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	// Compacted, as after a snapshot: the log starts past 1.
	if err := s.Log.DeleteRange(1, 100); err != nil {
		t.Fatal(err)
	}
	if err := s.Stable.SetUint64(keyCurrentTerm, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Stable.Set(keyLastVoteCand, []byte("n2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	check := func(s *Stores, store string) {
		t.Helper()
		first, _ := s.Log.FirstIndex()
		last, _ := s.Log.LastIndex()
		if first != 101 || last != 1200 {
			t.Fatalf("%s: log %d..%d, want 101..1200", store, first, last)
		}
		var l raft.Log
		if err := s.Log.GetLog(777, &l); err != nil || l.Term != 3 || l.Data[0] != byte(777&0xff) {
			t.Fatalf("%s: entry 777 = %+v, %v", store, l, err)
		}
		term, err := s.Stable.GetUint64(keyCurrentTerm)
		cand, cerr := s.Stable.Get(keyLastVoteCand)
		if err != nil || cerr != nil || term != 3 || string(cand) != "n2" {
			t.Fatalf("%s: term %d vote %q (%v, %v)", store, term, cand, err, cerr)
		}
	}
	s, err = OpenStores(dir, nil, WithWAL())
	if err != nil {
		t.Fatal(err)
	}
	check(s, "wal")
	// Appends go on from there.
	if err := s.Log.StoreLogs([]*raft.Log{{Index: 1201, Term: 4, Type: raft.LogCommand}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, boltFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("raft.db still in place after the migration: %v", err)
	}

	s, err = OpenStores(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if last, _ := s.Log.LastIndex(); last != 1201 {
		t.Fatalf("back on boltdb: last index %d, want 1201", last)
	}
}

func TestStores_WALRefusesNoSync(t *testing.T) {
	if _, err := OpenStores(t.TempDir(), nil, WithWAL(), WithNoSync()); !errors.Is(err, ErrStoreConfig) {
		t.Fatalf("wal with no_sync: %v", err)
	}
}
