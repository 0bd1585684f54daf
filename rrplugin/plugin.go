package rrplugin

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/roadrunner-server/api/v4/plugins/v1/kv"
	"github.com/roadrunner-server/endure/v2/dep"
	"github.com/roadrunner-server/errors"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
)

// PluginName is the plugin's name in RoadRunner, the `driver:` value of
// its storages and the name of its top-level config section.
const PluginName = "kvnode"

// kvSection is RoadRunner's kv plugin's section: without it nothing would
// ask this plugin for a storage.
const kvSection = "kv"

// tracerName names the plugin's spans' instrumentation scope.
const tracerName = "kvnode"

// Configurer is RoadRunner's config plugin, as the drivers use it.
type Configurer interface {
	// UnmarshalKey decodes one section of .rr.yaml into out.
	UnmarshalKey(name string, out any) error
	// Has reports whether a section exists.
	Has(name string) bool
}

// Logger is RoadRunner's logger plugin.
type Logger interface {
	NamedLogger(name string) *zap.Logger
}

// Tracer is RoadRunner's otel plugin, when the binary has it.
type Tracer interface {
	Tracer() *sdktrace.TracerProvider
}

// Plugin registers the kvnode driver with RoadRunner's kv plugin, which
// collects every plugin with KvFromConfig and Name as a kv.Constructor.
type Plugin struct {
	cfg     Configurer
	log     *zap.Logger
	conf    *Config // nil when .rr.yaml has no kvnode section
	tracer  trace.TracerProvider
	metrics *metrics

	mu    sync.Mutex
	nodes *nodes // shared by the storages; made by the first, closed by the last
	users int
}

var _ kv.Constructor = (*Plugin)(nil)

// Init reads the kvnode section. A binary built with the plugin but
// configured without a kv section runs without it (errors.Disabled, as
// RoadRunner's drivers do); a kvnode section that is there but wrong stops
// RoadRunner with every problem named.
func (p *Plugin) Init(cfg Configurer, log Logger) error {
	const op = errors.Op("kvnode_plugin_init")
	if !cfg.Has(kvSection) {
		return errors.E(op, errors.Disabled)
	}
	p.cfg = cfg
	p.log = log.NamedLogger(PluginName)
	// Without the otel plugin spans cost nothing; RoadRunner's own drivers
	// record into an SDK provider that exports nowhere instead.
	p.tracer = noop.NewTracerProvider()
	p.metrics = newMetrics()
	if cfg.Has(PluginName) {
		conf := &Config{}
		if err := cfg.UnmarshalKey(PluginName, conf); err != nil {
			return errors.E(op, fmt.Errorf("%w: kvnode: %w", ErrConfig, err))
		}
		conf.defaults()
		if err := conf.validate(); err != nil {
			return errors.E(op, err)
		}
		p.conf = conf
	}
	return nil
}

// Name is the driver's name.
func (p *Plugin) Name() string { return PluginName }

// Collects takes the otel plugin's tracer provider when there is one.
func (p *Plugin) Collects() []*dep.In {
	return []*dep.In{
		dep.Fits(func(pp any) {
			p.tracer = pp.(Tracer).Tracer()
		}, (*Tracer)(nil)),
	}
}

// MetricsCollector hands the plugin's series to RoadRunner's metrics
// plugin. They exist from Init on, so the metrics plugin gets them whether
// it serves before or after the kv plugin has asked for storages.
func (p *Plugin) MetricsCollector() []prometheus.Collector {
	return p.metrics.collectors()
}

// KvFromConfig returns the storage the kv plugin asks for. key is where its
// config is: "kv.<name>.config", or a top-level section "<name>" when the
// storage has no config of its own, or "" when it has neither.
func (p *Plugin) KvFromConfig(key string) (kv.Storage, error) {
	const op = errors.Op("kvnode_plugin_provide")
	if p.conf == nil {
		return nil, errors.E(op, fmt.Errorf("%w: a storage uses driver kvnode, but .rr.yaml has no top-level kvnode section with addrs", ErrConfig))
	}
	name, err := p.storageName(key)
	if err != nil {
		return nil, errors.E(op, err)
	}
	remote := name
	if key != "" {
		sc := &StorageConfig{}
		if err := p.cfg.UnmarshalKey(key, sc); err != nil {
			return nil, errors.E(op, fmt.Errorf("%w: %s: %w", ErrConfig, key, err))
		}
		if sc.Storage != "" {
			remote = sc.Storage
		}
	}
	s := &Storage{
		name:    remote,
		nodes:   p.acquire(),
		timeout: p.conf.Timeout,
		tracer:  p.tracer.Tracer(tracerName),
		release: sync.OnceFunc(p.release),
		m:       make(map[string]methodMetrics, len(allMethods)),
		moves:   p.metrics.failovers.WithLabelValues(remote),
	}
	for _, m := range allMethods {
		s.m[m] = p.metrics.forMethod(remote, m)
	}
	p.log.Debug("storage on the kvnode cluster", zap.String("storage", name), zap.String("cluster_storage", remote), zap.Strings("addrs", p.conf.Addrs))
	return s, nil
}

// storageName finds the name the storage has in RoadRunner's kv section,
// which is also its default name on the cluster.
func (p *Plugin) storageName(key string) (string, error) {
	if name, ok := strings.CutPrefix(key, kvSection+"."); ok {
		if name, ok = strings.CutSuffix(name, ".config"); ok && name != "" {
			return name, nil
		}
	}
	if key != "" {
		return key, nil
	}
	// Neither kv.<name>.config nor a section <name>: the kv plugin does not
	// say which storage it asks for. It is the kvnode storage without any
	// config, if there is exactly one; with several the answer would be a
	// guess, and a wrong guess would serve one storage's keys as another's.
	var storages map[string]any
	if err := p.cfg.UnmarshalKey(kvSection, &storages); err != nil {
		return "", fmt.Errorf("%w: kv: %w", ErrConfig, err)
	}
	var bare []string
	for name, v := range storages {
		m, ok := v.(map[string]any)
		if !ok || m["driver"] != PluginName {
			continue
		}
		if !p.cfg.Has(kvSection+"."+name+".config") && !p.cfg.Has(name) {
			bare = append(bare, name)
		}
	}
	if len(bare) == 1 {
		return bare[0], nil
	}
	slices.Sort(bare)
	return "", fmt.Errorf("%w: kv storages %s use driver kvnode without a config; give each one, e.g. config: { storage: %s }",
		ErrConfig, strings.Join(bare, ", "), firstOr(bare, "name"))
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// acquire returns the shared node pools, making them for the first storage.
func (p *Plugin) acquire() *nodes {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nodes == nil {
		p.nodes = newNodes(p.conf, p.moved)
		for _, a := range p.conf.Addrs {
			p.metrics.active.WithLabelValues(a).Set(0)
		}
		p.metrics.active.WithLabelValues(p.nodes.current()).Set(1)
	}
	p.users++
	return p.nodes
}

// release closes the node pools when the last storage stops.
func (p *Plugin) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users--
	if p.users == 0 && p.nodes != nil {
		p.nodes.close()
		p.nodes = nil
	}
}

// moved records that calls now go to another node.
func (p *Plugin) moved(from, to string) {
	p.metrics.active.WithLabelValues(from).Set(0)
	p.metrics.active.WithLabelValues(to).Set(1)
	p.log.Warn("kvnode node did not answer; calls go to another node now", zap.String("from", from), zap.String("to", to))
}
