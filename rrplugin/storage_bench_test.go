package rrplugin_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/roadrunner-server/api/v4/plugins/v1/kv"

	"github.com/kvnode/kvnode/client"
	"github.com/kvnode/kvnode/rrplugin"
)

// BenchmarkCall measures the plugin's own cost per call, without
// RoadRunner's RPC in front of it: the same one-key call made one at a time
// against the leader of a real three-node cluster, once with kvnode's client
// directly (what the plugin uses underneath) and once through the plugin's
// Storage. The difference between the two is what the plugin adds.
//
//	go test -run '^$' -bench BenchmarkCall -benchmem -count 5 .
func BenchmarkCall(b *testing.B) {
	cl := startCluster(b)
	leader := cl.leader(b)
	const keyspace = 1000
	value := []byte(strings.Repeat("v", 100))
	keys := make([]string, keyspace)
	items := make([]client.Item, keyspace)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
		items[i] = client.Item{Key: keys[i], Value: value}
	}
	direct := dial(b, leader.rpc)
	if err := direct.Set(b.Context(), "sessions", items...); err != nil {
		b.Fatal(err)
	}

	p := &rrplugin.Plugin{}
	if err := p.Init(config{
		"kv":                 map[string]any{"sessions": map[string]any{"driver": "kvnode"}},
		"kvnode":             rrplugin.Config{Addrs: []string{leader.rpc}},
		"kv.sessions.config": rrplugin.StorageConfig{Storage: "sessions"},
	}, nopLogger{}); err != nil {
		b.Fatal(err)
	}
	s, err := p.KvFromConfig("kv.sessions.config")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Stop)

	b.Run("mget/direct", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := direct.MGet(b.Context(), "sessions", keys[i%keyspace]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mget/plugin", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.MGet(keys[i%keyspace]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("has/plugin", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.Has(keys[i%keyspace]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("set/direct", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if err := direct.Set(b.Context(), "sessions", items[i%keyspace]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("set/plugin", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			it := item{k: keys[i%keyspace], v: string(value)}
			if err := s.Set(kv.Item(it)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
