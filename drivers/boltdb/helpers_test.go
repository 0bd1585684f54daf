package boltdb

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kvnode/kvnode/drivers"
)

const sec = int64(1e9)

func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := Config{File: filepath.Join(t.TempDir(), "rr.db")}
	cfg.InitDefaults()
	return cfg
}

func openEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := Open(cfg, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil && !errors.Is(err, drivers.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func newEngine(t *testing.T) *Engine {
	t.Helper()
	return openEngine(t, testConfig(t))
}

// mustApply applies ops and fails the test on any batch or per-op error.
func mustApply(t *testing.T, e *Engine, index uint64, ops ...drivers.Op) {
	t.Helper()
	errs, err := e.Apply(index, ops)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Apply op %d: %v", i, err)
		}
	}
}

func setOp(now int64, items ...drivers.Item) drivers.Op {
	return drivers.Op{Kind: drivers.OpSet, Now: now, Items: items}
}

func item(key, value string, deadline int64) drivers.Item {
	it := drivers.Item{Key: key, Value: []byte(value), Deadline: deadline}
	if deadline != 0 {
		it.Timeout = "t" + key
	}
	return it
}

func has(t *testing.T, e *Engine, now int64, keys ...string) []string {
	t.Helper()
	got, err := e.Has(now, keys)
	if err != nil {
		t.Fatalf("Has: %v", err)
	}
	slices.Sort(got)
	return got
}

// values returns MGet's answer as key -> value.
func values(t *testing.T, e *Engine, now int64, keys ...string) map[string]string {
	t.Helper()
	got, err := e.MGet(now, keys)
	if err != nil {
		t.Fatalf("MGet: %v", err)
	}
	m := map[string]string{}
	for _, it := range got {
		if _, dup := m[it.Key]; dup {
			t.Fatalf("MGet returned %q twice", it.Key)
		}
		m[it.Key] = string(it.Value)
	}
	return m
}

// ttls returns TTL's answer as key -> item.
func ttls(t *testing.T, e *Engine, now int64, keys ...string) map[string]drivers.Item {
	t.Helper()
	got, err := e.TTL(now, keys)
	if err != nil {
		t.Fatalf("TTL: %v", err)
	}
	m := map[string]drivers.Item{}
	for _, it := range got {
		m[it.Key] = it
	}
	return m
}

func hash(t *testing.T, e *Engine) string {
	t.Helper()
	h, err := e.Hash()
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return string(h)
}
