package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/kvnode/kvnode/cluster"
)

// envPrefix starts every environment override of a cluster setting:
// KVNODE_CLUSTER_NODE_ID sets cluster.node_id, KVNODE_CLUSTER_RAFT_BIND
// cluster.raft.bind. Containers configure nodes this way without a file
// per node.
const envPrefix = "KVNODE_"

// clusterEnvOverrides turns the KVNODE_CLUSTER_* variables that are set
// into "-o" overrides. The names derive from cluster.Config's yaml tags;
// peers take "id=host:port,id=host:port", gossip.join "host:port,host:port".
func clusterEnvOverrides(lookup func(string) (string, bool)) []string {
	var out []string
	for _, path := range settingPaths("cluster", reflect.TypeFor[cluster.Config]()) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
		v, ok := lookup(name)
		if !ok {
			continue
		}
		switch path {
		case "cluster.peers":
			v = peersYAML(v)
		case "cluster.gossip.join":
			v = listYAML(v)
		}
		out = append(out, path+"="+v)
	}
	return out
}

// settingPaths lists the dot paths of a config struct's leaf settings.
func settingPaths(prefix string, t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		path := prefix + "." + tag
		if f.Type.Kind() == reflect.Struct && f.Type.String() != "time.Duration" {
			out = append(out, settingPaths(path, f.Type)...)
			continue
		}
		out = append(out, path)
	}
	sort.Strings(out)
	return out
}

// peersYAML renders "n1=a:7000,n2=b:7000" as a YAML flow list of peers.
func peersYAML(s string) string {
	var parts []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		id, addr, _ := strings.Cut(p, "=")
		parts = append(parts, fmt.Sprintf("{id: %q, address: %q}", id, addr))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// listYAML renders "a:1, b:2" as a YAML flow list of strings.
func listYAML(s string) string {
	var parts []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, fmt.Sprintf("%q", p))
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// decodeCluster decodes the cluster section; nil when there is none.
func decodeCluster(n *yaml.Node, p *Problems) *cluster.Config {
	if isNull(n) {
		return nil
	}
	cfg := &cluster.Config{}
	before := len(p.errs)
	decodeValue(n, "cluster", reflect.ValueOf(cfg).Elem(), p)
	if len(p.errs) > before {
		return cfg
	}
	cfg.InitDefaults()
	if err := cfg.Validate(); err != nil {
		for _, e := range flatten(err) {
			p.Add("", e)
		}
	}
	return cfg
}

// decodeConsistency reads kv.<name>.consistency.
func decodeConsistency(n *yaml.Node, path string, p *Problems) cluster.Consistency {
	n = resolve(n)
	if isNull(n) || n.Kind != yaml.ScalarNode {
		p.Addf(path, "want local or linearizable")
		return cluster.ReadLocal
	}
	c, err := cluster.ParseConsistency(n.Value)
	if err != nil {
		p.Addf(path, "%q: want local or linearizable", n.Value)
	}
	return c
}
