package config

import (
	"net"
	"strings"

	"gopkg.in/yaml.v3"
)

// OpsConfig is where the HTTP ops endpoint (/health, /ready, /metrics)
// listens: RoadRunner's metrics.address and status.address, both accepted
// and both served when they differ. Empty: no endpoint (the default).
type OpsConfig struct {
	Addresses []string
	// Pprof serves Go's profiler under /debug/pprof/ (metrics.pprof, a
	// kvnode key; off by default: it lets whoever reaches the port read
	// the process's heap and stacks).
	Pprof bool
}

// decodeOps reads metrics.address or status.address (the section's other
// RoadRunner keys are ignored).
func decodeOps(n *yaml.Node, section string, cfg *OpsConfig, p *Problems) {
	var s struct {
		Address string `yaml:"address"`
		Pprof   bool   `yaml:"pprof"`
	}
	decodeLenient(n, section, &s, p)
	cfg.Pprof = cfg.Pprof || s.Pprof
	a := strings.TrimSpace(s.Address)
	if a == "" {
		return
	}
	host, port, err := net.SplitHostPort(strings.TrimPrefix(a, "http://"))
	if err != nil || port == "" || strings.ContainsAny(host, " /") {
		p.Addf(section+".address", "%q: want host:port, e.g. 127.0.0.1:2112", a)
		return
	}
	cfg.Addresses = append(cfg.Addresses, a)
}
