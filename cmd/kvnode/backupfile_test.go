package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// snapshot save used to write FILE.tmp with O_TRUNC, following a symlink
// planted under that name: another user could make it overwrite any file
// the operator can write. The temporary file is now a new one of its own.
func TestCreateBackup_IgnoresPlantedTmpSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(victim, []byte("precious data"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "backup.kvsnap")
	if err := os.Symlink(victim, file+".tmp"); err != nil {
		t.Fatal(err)
	}

	for _, commit := range []bool{false, true} {
		bw, err := createBackup(file, backupMeta{NodeID: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bw.Write([]byte("stream")); err != nil {
			t.Fatal(err)
		}
		if commit {
			if err := bw.Commit(); err != nil {
				t.Fatal(err)
			}
		} else {
			bw.Abort()
		}
		if got, err := os.ReadFile(victim); err != nil || string(got) != "precious data" {
			t.Fatalf("commit=%v: the symlink's target now holds %q (%v)", commit, got, err)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil || !strings.HasPrefix(string(b), backupMagic) {
		t.Fatalf("backup not written: %v", err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup mode %v, %v; want 0600", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if name := e.Name(); name != "backup.kvsnap" && name != "backup.kvsnap.tmp" {
			t.Errorf("left behind: %s", name)
		}
	}
}
