package boltdb

import (
	"path/filepath"
	"testing"

	"github.com/kvnode/kvnode/drivers"
)

func TestBoltdbDriver_FileIsTakenInTheDataDir(t *testing.T) {
	d := Driver()
	settings := d.DefaultSettings()
	if got := d.File(settings, ""); got != DefaultFile {
		t.Errorf("File(default, \"\") = %q, want %q", got, DefaultFile)
	}
	dir := t.TempDir()
	want := filepath.Join(dir, DefaultFile)
	if got := d.File(settings, dir); got != want {
		t.Errorf("File(default, dir) = %q, want %q", got, want)
	}
	e, err := d.OpenEngine(settings, drivers.Env{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Close() }()
	if _, err := Open(Config{File: want, LockTimeout: 1}, nil); err == nil {
		t.Errorf("%s is not the engine's (locked) file", want)
	}
}
