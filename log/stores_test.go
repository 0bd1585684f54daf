package log

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

func TestStores_PersistAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStores(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := Encode(Event{Storage: "default", Op: sampleEvents()["clear"].Op})
	if err != nil {
		t.Fatal(err)
	}
	logs := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogCommand, Data: data},
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: data},
	}
	if err := s.Log.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.Stable.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	sink, err := s.Snapshots.Create(raft.SnapshotVersionMax, 2, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte("state")); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err != nil {
		t.Fatal(err)
	}

	s, err = OpenStores(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	last, err := s.Log.LastIndex()
	if err != nil || last != 2 {
		t.Fatalf("LastIndex = %d, %v; want 2", last, err)
	}
	var got raft.Log
	if err := s.Log.GetLog(2, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data, data) || got.Type != raft.LogCommand {
		t.Fatalf("log 2 = %+v", got)
	}
	term, err := s.Stable.GetUint64([]byte("CurrentTerm"))
	if err != nil || term != 7 {
		t.Fatalf("CurrentTerm = %d, %v", term, err)
	}
	metas, err := s.Snapshots.List()
	if err != nil || len(metas) != 1 || metas[0].Index != 2 {
		t.Fatalf("snapshots = %+v, %v", metas, err)
	}
	_, rc, err := s.Snapshots.Open(metas[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	if b, err := io.ReadAll(rc); err != nil || string(b) != "state" {
		t.Fatalf("snapshot = %q, %v", b, err)
	}
}

func TestOpenStores_UnusableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := OpenStores(filepath.Join(file, "sub"), nil); err == nil {
		_ = s.Close()
		t.Fatal("OpenStores under a regular file succeeded")
	}
}

// recorder is a slog.Handler that keeps the records it is given.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func TestSlogWriter_MapsLevels(t *testing.T) {
	rec := &recorder{}
	w := &slogWriter{log: slog.New(rec)}
	in := "2025-01-01T00:00:00.000Z [ERROR] snapshot: failed to open: err=x\n" +
		"2025-01-01T00:00:00.000Z [WARN]  snapshot: slow\n\n" +
		"2025-01-01T00:00:00.000Z [INFO]  snapshot: creating new snapshot: path=/p\n" +
		"no level at all\n"
	if n, err := w.Write([]byte(in)); err != nil || n != len(in) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	want := []struct {
		level slog.Level
		msg   string
	}{
		{slog.LevelError, "snapshot: failed to open: err=x"},
		{slog.LevelWarn, "snapshot: slow"},
		{slog.LevelInfo, "snapshot: creating new snapshot: path=/p"},
		{slog.LevelInfo, "no level at all"},
	}
	if len(rec.recs) != len(want) {
		t.Fatalf("got %d records, want %d", len(rec.recs), len(want))
	}
	for i, w := range want {
		if r := rec.recs[i]; r.Level != w.level || !strings.EqualFold(r.Message, w.msg) {
			t.Errorf("record %d = %v %q, want %v %q", i, r.Level, r.Message, w.level, w.msg)
		}
	}
}
