package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvnode/kvnode/cluster"
	"github.com/kvnode/kvnode/cluster/clustertest"
	"github.com/kvnode/kvnode/drivers"
)

// nodeTLS names the files `kvnode tls cert NODE --dir dir` writes, trusting
// the CA in caDir.
func nodeTLS(dir, caDir, node string) cluster.TLSConfig {
	return cluster.TLSConfig{Cert: filepath.Join(dir, node+".pem"), Key: filepath.Join(dir, node+"-key.pem"), CA: filepath.Join(caDir, "ca.pem")}
}

// The files kvnode tls and kvnode keygen write form a working cluster with
// mutual TLS and encrypted gossip; a certificate from another CA made by
// the same commands is refused.
func TestTLSCommands_GeneratedSecretsFormACluster(t *testing.T) {
	dir, rogueDir := t.TempDir(), t.TempDir()
	mustVerb(t, "tls", "ca", "--dir", dir)
	for i := range 3 {
		mustVerb(t, "tls", "cert", fmt.Sprintf("node%d", i), "--dir", dir, "--host", "127.0.0.1")
	}
	key := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(key, []byte(mustVerb(t, "keygen")), 0o600); err != nil {
		t.Fatal(err)
	}
	mustVerb(t, "tls", "ca", "--dir", rogueDir)
	mustVerb(t, "tls", "cert", "node3", "--dir", rogueDir)

	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := clustertest.New(t, clustertest.Options{Gossip: true, Logger: logger, TuneNode: func(i int, cfg *cluster.Config) {
		cfg.TLS = nodeTLS(dir, dir, fmt.Sprintf("node%d", i))
		cfg.Gossip.EncryptKeyFile = key
	}})
	want := []string{"node0:voter", "node1:voter", "node2:voter"}
	leader := c.WaitConfiguration(want...)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	follower := (leader + 1) % 3
	if err := c.Store(follower, "mem", cluster.ReadLinearizable).Set(ctx, []drivers.Item{{Key: "k", Value: []byte("v")}}); err != nil {
		t.Fatalf("write through a follower (forwarded over TLS): %v", err)
	}
	if strings.Contains(logs.String(), "refused cluster connection") {
		t.Fatal("a member was refused")
	}

	// Another gossip key (and a good certificate): its gossip is refused,
	// so the key file is in use.
	other := c.AddNode(func(cfg *cluster.Config) {
		cfg.TLS = nodeTLS(dir, dir, "node0")
		cfg.Gossip.EncryptKeyFile, cfg.Gossip.EncryptKey = "", base64.StdEncoding.EncodeToString(make([]byte, 32))
	})
	c.Poll("a member refuses gossip without the key", func() string {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "refused gossip") && !strings.Contains(l, "node="+c.Nodes[other].ID+" ") {
				return ""
			}
		}
		return "no refusal logged by a member"
	})
	c.Kill(other)

	// Right gossip key, certificate from the other CA: seen in gossip,
	// refused on the cluster port, never added to raft.
	bad := c.AddNode(func(cfg *cluster.Config) { cfg.TLS = nodeTLS(rogueDir, dir, "node3") })
	id := c.Nodes[bad].ID
	c.Poll("the leader refuses the rogue certificate", func() string {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "not adding gossip member to raft") && strings.Contains(l, "member="+id) {
				return ""
			}
		}
		return "no refusal logged"
	})
	if got := c.Configuration(c.WaitConfiguration(want...)); !slices.Equal(got, want) {
		t.Fatalf("configuration %v", got)
	}
	wctx, wcancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer wcancel()
	if err := c.Store(bad, "mem", cluster.ReadLocal).Set(wctx, []drivers.Item{{Key: "rogue", Value: []byte("x")}}); !errors.Is(err, cluster.ErrNoLeader) {
		t.Fatalf("the rogue node's write: %v (want ErrNoLeader)", err)
	}
}

func TestTLSCommands_FilesAndRefusals(t *testing.T) {
	dir := t.TempDir()
	out := mustVerb(t, "tls", "ca", "--dir", dir)
	if !strings.Contains(out, "ca.pem") || !strings.Contains(out, "ca-key.pem") {
		t.Errorf("tls ca output: %q", out)
	}
	mustVerb(t, "tls", "cert", "node1", "--dir", dir, "--host", "node1-peer", "--host", "10.0.0.1")
	for name, want := range map[string]os.FileMode{"ca.pem": 0o644, "ca-key.pem": 0o600, "node1.pem": 0o644, "node1-key.pem": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&^want != 0 {
			t.Errorf("%s: mode %o, want at most %o", name, got, want)
		}
	}

	// Nothing is overwritten, and a refused run leaves no half pair.
	caBefore, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if code, _, errs := runVerb(t, "tls", "ca", "--dir", dir); code != 1 || !strings.Contains(errs, "refusing to overwrite") {
		t.Errorf("second tls ca: exit %d, %q", code, errs)
	}
	if caAfter, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); string(caAfter) != string(caBefore) {
		t.Error("ca.pem was replaced")
	}
	if code, _, errs := runVerb(t, "tls", "cert", "node1", "--dir", dir); code != 1 || !strings.Contains(errs, "node1.pem exists") {
		t.Errorf("second tls cert node1: exit %d, %q", code, errs)
	}
	if err := os.WriteFile(filepath.Join(dir, "node2-key.pem"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runVerb(t, "tls", "cert", "node2", "--dir", dir); code != 1 {
		t.Errorf("tls cert over an existing key: exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "node2.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused tls cert left node2.pem behind: %v", err)
	}

	for _, args := range [][]string{
		{"tls"}, {"tls", "ca", "extra"}, {"tls", "cert"}, {"tls", "cert", "../evil", "--dir", dir},
		{"tls", "cert", "a", "b", "--dir", dir}, {"tls", "cert", "n", "--host", "bad host", "--dir", dir},
		{"tls", "cert", "n", "--days", "0", "--dir", dir}, {"keygen", "x"},
	} {
		if code, _, _ := runVerb(t, args...); code != 2 {
			t.Errorf("kvnode %q: exit %d, want 2 (usage)", args, code)
		}
	}
	if code, _, errs := runVerb(t, "tls", "cert", "n", "--dir", t.TempDir()); code != 1 || !strings.Contains(errs, "kvnode tls ca") {
		t.Errorf("tls cert without a CA: exit %d, %q (want a hint to create one)", code, errs)
	}

	k1, k2 := strings.TrimSpace(mustVerb(t, "keygen")), strings.TrimSpace(mustVerb(t, "keygen"))
	if b, err := base64.StdEncoding.DecodeString(k1); err != nil || len(b) != 32 || k1 == k2 {
		t.Errorf("keygen: %q, %q (%v)", k1, k2, err)
	}
}

// syncBuffer is a bytes.Buffer that the nodes write to while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
