package boltdb

import (
	"fmt"
	"path/filepath"

	"github.com/kvnode/kvnode/drivers"
)

// Driver describes the boltdb driver to kvnode: replicable, one file per
// storage.
func Driver() drivers.Driver {
	return drivers.Driver{
		Name:       "boltdb",
		NewConfig:  func() any { return &Config{} },
		Open:       open,
		OpenEngine: openInDataDir,
		File:       file,
		ErrorOp:    "boltdb_driver_",
		Unbounded:  "a boltdb storage lives on disk; bound a memory storage instead",
	}
}

// open serves a standalone boltdb storage through drivers.Standalone. Expired
// keys are removed from the file every second, or every interval when the
// section gives one (RoadRunner's GC period): reads hide them regardless.
func open(settings any, env drivers.Env) (drivers.Store, error) {
	cfg := settings.(*Config)
	e, err := Open(*cfg, env.Logger)
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	o := env.StandaloneOptions("boltdb")
	if env.Given != nil && env.Given("interval") {
		o.SweepInterval = cfg.SweepInterval()
	}
	return drivers.NewStandalone(e, o), nil
}

// openInDataDir opens a replicated storage's engine, its file taken in the
// node's data directory when relative, without fsync when the raft log is
// its durable record (env.Unsynced).
func openInDataDir(settings any, env drivers.Env) (drivers.Engine, error) {
	cfg := *settings.(*Config)
	cfg.File = file(settings, env.DataDir)
	var opts []Option
	if env.Unsynced {
		opts = append(opts, WithoutSync())
	}
	e, err := Open(cfg, env.Logger, opts...)
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	return e, nil
}

// file is the storage's file, taken in dir when relative.
func file(settings any, dir string) string {
	f := settings.(*Config).File
	if dir != "" && !filepath.IsAbs(f) {
		f = filepath.Join(dir, f)
	}
	return f
}
