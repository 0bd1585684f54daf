package redis

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"
)

func TestConfig_DecodesRoadRunnerSection(t *testing.T) {
	src := `
addrs: ["10.0.0.1:6379"]
db: 2
username: u
password: p
dial_timeout: 5s
read_timeout: 1500ms
max_retries: 4
pool_size: 20
conn_max_idle_time: 1m
idle_check_freq: 30s
tls:
  root_ca: /ca.pem
`
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if c.Addrs[0] != "10.0.0.1:6379" || c.DB != 2 || c.Username != "u" || c.Password != "p" ||
		c.DialTimeout != 5*time.Second || c.ReadTimeout != 1500*time.Millisecond || c.MaxRetries != 4 ||
		c.PoolSize != 20 || c.ConnMaxIdleTime != time.Minute || c.IdleCheckFreq != 30*time.Second ||
		c.TLS == nil || c.TLS.RootCA != "/ca.pem" {
		t.Fatalf("decoded %+v (tls %+v)", c, c.TLS)
	}
}

func TestConfig_InitDefaults(t *testing.T) {
	var c Config
	c.InitDefaults()
	if len(c.Addrs) != 1 || c.Addrs[0] != DefaultAddr {
		t.Fatalf("default addrs = %v, want [%s]", c.Addrs, DefaultAddr)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	c = Config{Addrs: []string{"a:1", "b:2"}}
	c.InitDefaults()
	if len(c.Addrs) != 2 {
		t.Fatalf("InitDefaults replaced configured addrs: %v", c.Addrs)
	}
}

func TestConfig_ValidateNamesTheField(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	ok := []string{"127.0.0.1:6379"}
	for _, tc := range []struct {
		name, want string
		cfg        Config
	}{
		{"no addrs", "addrs", Config{}},
		{"no port", `addrs[0] "localhost"`, Config{Addrs: []string{"localhost"}}},
		{"no host", `addrs[1] ":6379"`, Config{Addrs: []string{"a:1", ":6379"}}},
		{"bad port", `addrs[0] "h:0"`, Config{Addrs: []string{"h:0"}}},
		{"negative db", "db", Config{Addrs: ok, DB: -1}},
		{"db in cluster", "db: redis cluster", Config{Addrs: []string{"a:1", "b:2"}, DB: 1}},
		{"max_retries", "max_retries", Config{Addrs: ok, MaxRetries: -2}},
		{"pool_size", "pool_size", Config{Addrs: ok, PoolSize: -1}},
		{"min_idle_conns", "min_idle_conns", Config{Addrs: ok, MinIdleConns: -1}},
		{"read_timeout", "read_timeout", Config{Addrs: ok, ReadTimeout: -time.Second}},
		{"dial_timeout", "dial_timeout", Config{Addrs: ok, DialTimeout: -time.Second}},
		{"backoff order", "min_retry_backoff", Config{Addrs: ok, MinRetryBackoff: time.Second, MaxRetryBackoff: time.Millisecond}},
		{"cert without key", "tls.key", Config{Addrs: ok, TLS: &TLSConfig{Cert: garbage}}},
		{"key without cert", "tls.cert", Config{Addrs: ok, TLS: &TLSConfig{Key: garbage}}},
		{"unreadable cert", "tls.cert/tls.key", Config{Addrs: ok, TLS: &TLSConfig{Cert: missing, Key: missing}}},
		{"unreadable root_ca", "tls.root_ca", Config{Addrs: ok, TLS: &TLSConfig{RootCA: missing}}},
		{"garbage root_ca", "tls.root_ca", Config{Addrs: ok, TLS: &TLSConfig{RootCA: garbage}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want an error naming %q", tc.cfg, tc.want)
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %q, want ErrConfig naming %q", err, tc.want)
			}
			if _, nerr := New(tc.cfg, nil, nil); tc.name != "no addrs" && nerr == nil {
				t.Fatal("New accepted a config Validate refuses")
			}
		})
	}
}

func TestConfig_ValidateReportsAllErrors(t *testing.T) {
	err := (&Config{Addrs: []string{"nope"}, DB: -1, PoolSize: -1}).Validate()
	for _, field := range []string{"addrs[0]", "db", "pool_size"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Fatalf("Validate = %v, want every bad field reported, %s among them", err, field)
		}
	}
}

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kvnode-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestConfig_TLS(t *testing.T) {
	cert, key := writeCert(t)
	c := Config{Addrs: []string{"127.0.0.1:6379"}, TLS: &TLSConfig{Cert: cert, Key: key, RootCA: cert}}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	o, err := c.options()
	if err != nil {
		t.Fatalf("options: %v", err)
	}
	if o.TLSConfig == nil || o.TLSConfig.RootCAs == nil || o.TLSConfig.GetClientCertificate == nil {
		t.Fatalf("TLS config = %+v, want root CAs and a client certificate", o.TLSConfig)
	}
	got, err := o.TLSConfig.GetClientCertificate(nil)
	if err != nil || len(got.Certificate) != 1 {
		t.Fatalf("client certificate = %v, %v", got, err)
	}
	if o2, _ := (&Config{Addrs: []string{"127.0.0.1:6379"}}).options(); o2.TLSConfig != nil {
		t.Fatal("TLS enabled without a tls section")
	}
}

func TestConfig_SelectsClientType(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		mode    string
		cluster bool
	}{
		{"one addr", Config{Addrs: []string{"127.0.0.1:6379"}}, ModeSingle, false},
		{"sentinel", Config{Addrs: []string{"127.0.0.1:26379", "127.0.0.1:26380"}, MasterName: "mymaster"}, ModeSentinel, false},
		{"several addrs", Config{Addrs: []string{"127.0.0.1:7000", "127.0.0.1:7001"}}, ModeCluster, true},
		{"sentinel routed by latency", Config{Addrs: []string{"127.0.0.1:26379"}, MasterName: "m", RouteByLatency: true}, ModeCluster, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg, nil, nil)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer closeStore(t, s)
			if s.Mode() != tc.mode || s.cluster != tc.cluster {
				t.Fatalf("mode %s (cluster %v), want %s (cluster %v)", s.Mode(), s.cluster, tc.mode, tc.cluster)
			}
			switch c := s.client.(type) {
			case *goredis.ClusterClient:
				if !tc.cluster {
					t.Fatal("got a cluster client")
				}
			case *goredis.Client:
				// go-redis names the address of a sentinel-backed client.
				if sentinel := c.Options().Addr == "FailoverClient"; sentinel != (tc.mode == ModeSentinel) {
					t.Fatalf("client addr %q for mode %s", c.Options().Addr, tc.mode)
				}
			default:
				t.Fatalf("unexpected client type %T", c)
			}
		})
	}
}
