package memory

// Config is the memory driver's configuration section. RoadRunner's memory
// driver takes no meaningful options; Interval is accepted so that existing
// .rr.yaml files decode unchanged, and is ignored because expired keys are
// hidden at once and swept by the caller (drivers.Local or the cluster).
type Config struct {
	// Interval is RoadRunner's GC interval in seconds. Ignored.
	Interval int `mapstructure:"interval" yaml:"interval"`
}
