package telemetry

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/kvnode/kvnode/config"
)

// NewLogger builds the slog logger for RoadRunner's logs section: JSON
// lines for production mode or json encoding, text otherwise, on stderr
// unless outputs are given. The returned close function closes log files.
// Level defaults to info (RoadRunner's default is debug, which is too
// chatty for a storage server).
func NewLogger(cfg config.LogsConfig, stdout, stderr io.Writer) (*slog.Logger, func() error, error) {
	noClose := func() error { return nil }
	if cfg.Mode == "off" || cfg.Mode == "none" {
		return slog.New(slog.DiscardHandler), noClose, nil
	}
	var (
		writers []io.Writer
		files   []*os.File
	)
	closeFiles := func() error {
		var errs []error
		for _, f := range files {
			errs = append(errs, f.Close())
		}
		return errors.Join(errs...)
	}
	for _, out := range cfg.Output {
		switch out {
		case "stderr":
			writers = append(writers, stderr)
		case "stdout":
			writers = append(writers, stdout)
		default:
			f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644) //nolint:gosec // the operator chose the path
			if err != nil {
				_ = closeFiles()
				return nil, nil, fmt.Errorf("logs.output: %w", err)
			}
			files = append(files, f)
			writers = append(writers, f)
		}
	}
	var w io.Writer
	switch len(writers) {
	case 0:
		w = stderr
	case 1:
		w = writers[0]
	default:
		w = io.MultiWriter(writers...)
	}
	opts := &slog.HandlerOptions{Level: logLevel(cfg.Level)}
	json := cfg.Encoding == "json" || (cfg.Encoding == "" && cfg.Mode == "production")
	if json {
		return slog.New(slog.NewJSONHandler(w, opts)), closeFiles, nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), closeFiles, nil
}

// logLevel maps RoadRunner's level names; panic and fatal, which slog does
// not have, mean error. The config was validated, so anything else is info.
func logLevel(level string) slog.Level {
	switch level {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error", "panic", "fatal":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
