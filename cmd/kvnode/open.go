package main

import (
	"errors"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/kvnode/kvnode/config"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/internal/failpoint"
)

// storageEnv is what opening a storage needs besides its settings.
type storageEnv struct {
	logger *slog.Logger
	// tp is the tracer provider for the drivers; nil disables spans.
	tp trace.TracerProvider
}

// driverEnv is the drivers.Env of storage sc.
func (env storageEnv) driverEnv(sc *config.StorageConfig, logger *slog.Logger) drivers.Env {
	return drivers.Env{Storage: sc.Name, Logger: logger, TracerProvider: env.tp, Clock: failpoint.Now,
		Limits: sc.Limits, EvictionSamples: sc.EvictionSamples, Given: sc.Given}
}

// openStorages opens every storage whose settings are valid, except in a
// cluster the replicated ones. Failures are recorded under the storage's
// path, or the field the driver's error names.
func openStorages(storages []config.StorageConfig, env storageEnv, clustered bool, p *config.Problems) []namedStore {
	var out []namedStore
	for i := range storages {
		sc := &storages[i]
		if sc.Driver.Name == "" || sc.Settings == nil || clustered && sc.Driver.Replicable() {
			continue
		}
		logger := env.logger.With("storage", sc.Name, "driver", sc.Driver.Name)
		st, err := sc.Driver.Open(sc.Settings, env.driverEnv(sc, logger))
		if err != nil {
			p.AddStorage(sc, err)
			continue
		}
		if sc.Limits.Bounded() {
			logger.Info("storage bounded", "limits", sc.Limits.String(), "max_memory_of", sc.LimitSource)
		}
		out = append(out, namedStore{name: sc.Name, driver: sc.Driver, store: st})
	}
	return out
}

// namedStore is an open storage and the name it is served under.
type namedStore struct {
	name   string
	driver drivers.Driver
	store  drivers.Store
}

// closeStores closes every store, returning all failures.
func closeStores(stores []namedStore) error {
	var errs []error
	for _, s := range stores {
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close storage %q: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}
