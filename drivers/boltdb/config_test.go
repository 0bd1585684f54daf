package boltdb

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.InitDefaults()
	if c.File != "rr.db" || c.Permissions != 0o600 || c.Interval != 60 || c.Bucket != "default" || c.LockTimeout != 5*time.Second {
		t.Fatalf("defaults = %+v", c)
	}
	if c.SweepInterval() != time.Minute {
		t.Fatalf("SweepInterval = %s", c.SweepInterval())
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigYAML(t *testing.T) {
	cases := map[string]FileMode{
		"permissions: 0644":    0o644,
		"permissions: 420":     0o644,
		"permissions: 0o600":   0o600,
		`permissions: "0640"`:  0o640,
		`permissions: "0o700"`: 0o700,
	}
	for src, want := range cases {
		var c Config
		if err := yaml.Unmarshal([]byte("file: /x/y.db\ninterval: 5\n"+src), &c); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if c.Permissions != want || c.File != "/x/y.db" || c.Interval != 5 {
			t.Fatalf("%s: got %+v", src, c)
		}
		if c.SweepInterval() != 5*time.Second {
			t.Fatalf("SweepInterval = %s", c.SweepInterval())
		}
	}
	var c Config
	err := yaml.Unmarshal([]byte(`permissions: "rw-r--r--"`), &c)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "permissions") {
		t.Fatalf("bad permissions string: %v", err)
	}
	if err := yaml.Unmarshal([]byte("lock_timeout: 250ms\nbucket: kv"), &c); err != nil || c.LockTimeout != 250*time.Millisecond || c.Bucket != "kv" {
		t.Fatalf("lock_timeout/bucket: %+v, %v", c, err)
	}
}

func TestConfigValidateNamesEveryField(t *testing.T) {
	c := Config{File: " ", Permissions: 644, Interval: -1, Bucket: "kvnode_ttl", LockTimeout: -time.Second}
	err := c.Validate()
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("Validate = %v", err)
	}
	for _, field := range []string{"file:", "permissions:", "interval:", "bucket:", "lock_timeout:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
	if _, err := Open(c, nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("Open with a bad config = %v", err)
	}
}

func TestOpenErrorsAreClear(t *testing.T) {
	dir := t.TempDir()
	notBolt := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notBolt, []byte(strings.Repeat("hello, not a database\n", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	aFile := filepath.Join(dir, "plain")
	if err := os.WriteFile(aFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.db")
	src := newEngine(t)
	fill(t, src, 1, 2000)
	data := snapshotBytes(t, src)
	if err := os.WriteFile(truncated, data[len(snapshotMagic)+8:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, file string
		is         error
	}{
		{"not a bolt file", notBolt, ErrNotBolt},
		{"truncated bolt file", truncated, ErrNotBolt},
		{"missing directory", filepath.Join(dir, "nope", "rr.db"), os.ErrNotExist},
		{"parent is a file", filepath.Join(aFile, "rr.db"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Open(Config{File: tc.file}, nil)
			if err == nil {
				_ = e.Close()
				t.Fatal("Open succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v does not wrap %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.file) {
				t.Fatalf("error does not name the file: %v", err)
			}
			t.Log(err)
		})
	}
}

func TestOpenPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores file permissions")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	_, err := Open(Config{File: filepath.Join(dir, "rr.db")}, nil)
	if !errors.Is(err, os.ErrPermission) {
		t.Fatalf("Open in a read-only directory = %v", err)
	}
}

func TestOpenNewFileUsesPermissions(t *testing.T) {
	cfg := Config{File: filepath.Join(t.TempDir(), "rr.db"), Permissions: 0o640}
	openEngine(t, cfg)
	wantMode(t, cfg.File, 0o640)
}

// TestFilesArePrivateByDefault: without "permissions" the database holds
// every key in the clear, so neither a new file nor one put in place by
// Restore may be readable by other users.
func TestFilesArePrivateByDefault(t *testing.T) {
	cfg := Config{File: filepath.Join(t.TempDir(), "rr.db")}
	e := openEngine(t, cfg)
	wantMode(t, cfg.File, 0o600)
	mustApply(t, e, 1, setOp(sec, item("k", "v", 0)))
	if err := e.Restore(bytes.NewReader(snapshotBytes(t, e))); err != nil {
		t.Fatal(err)
	}
	wantMode(t, cfg.File, 0o600)
}

func wantMode(t *testing.T, file string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Fatalf("%s: mode %v, want %v", file, got, want)
	}
}

func TestOpenLockedFileFailsInsteadOfHanging(t *testing.T) {
	cfg := testConfig(t)
	openEngine(t, cfg)
	cfg.LockTimeout = 100 * time.Millisecond
	_, err := Open(cfg, nil)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), cfg.File) {
		t.Fatalf("second Open = %v, want ErrLocked naming the file", err)
	}
}
