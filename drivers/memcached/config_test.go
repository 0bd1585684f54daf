package memcached

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfig_AddrAcceptsListOrString(t *testing.T) {
	for src, want := range map[string][]string{
		`addr: ["a:1", "b:2"]`: {"a:1", "b:2"},
		`addr: "a:1"`:          {"a:1"},
		`addr: a:1`:            {"a:1"},
	} {
		var c Config
		if err := yaml.Unmarshal([]byte(src), &c); err != nil {
			t.Fatalf("decode %q: %v", src, err)
		}
		if strings.Join(c.Addr, ",") != strings.Join(want, ",") {
			t.Fatalf("decode %q: addr = %v, want %v", src, c.Addr, want)
		}
	}
	var c Config
	if err := yaml.Unmarshal([]byte("addr: {a: 1}"), &c); err == nil {
		t.Fatal("a mapping for addr was accepted")
	}
	if err := yaml.Unmarshal([]byte("max_idle_conns: 8\ntimeout: 2s"), &c); err != nil ||
		c.MaxIdleConns != 8 || c.Timeout != 2*time.Second {
		t.Fatalf("decode = %+v, %v", c, err)
	}
}

func TestConfig_InitDefaults(t *testing.T) {
	var c Config
	c.InitDefaults()
	if len(c.Addr) != 1 || c.Addr[0] != DefaultAddr {
		t.Fatalf("default addr = %v, want [%s]", c.Addr, DefaultAddr)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestConfig_ValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		cfg        Config
	}{
		{"no addr", "addr", Config{}},
		{"no port", `addr[0] "localhost"`, Config{Addr: Addrs{"localhost"}}},
		{"bad port", `addr[1] "h:99999"`, Config{Addr: Addrs{"h:1", "h:99999"}}},
		{"max_idle_conns", "max_idle_conns", Config{Addr: Addrs{"h:1"}, MaxIdleConns: -1}},
		{"timeout", "timeout", Config{Addr: Addrs{"h:1"}, Timeout: -time.Second}},
	} {
		err := tc.cfg.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: Validate = %v, want ErrConfig naming %q", tc.name, err, tc.want)
		}
	}
	if err := (&Config{Addr: Addrs{"/run/memcached.sock"}}).Validate(); err != nil {
		t.Fatalf("a unix socket path was refused: %v", err)
	}
	if _, err := New(Config{Addr: Addrs{"nope"}}, nil, nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("New with a bad addr = %v, want ErrConfig", err)
	}
}

func TestExpiration(t *testing.T) {
	const sec = int64(time.Second)
	now := int64(1_700_000_000) * sec
	for _, tc := range []struct {
		name     string
		deadline int64
		exp      int32
		expired  bool
	}{
		{"none", 0, 0, false},
		{"past", now - 1, 0, true},
		{"now", now, 0, true},
		{"epoch", 1, 0, true},
		{"a nanosecond ahead rounds up", now + 1, 1, false},
		{"whole seconds", now + 10*sec, 10, false},
		{"thirty days is relative", now + maxRelative*sec, maxRelative, false},
		{"beyond thirty days is absolute", now + (maxRelative+1)*sec, int32(now/sec + maxRelative + 1), false},
		{"after 2038 clamps", now + 100*365*24*3600*sec, math.MaxInt32, false},
		{"the largest deadline clamps too", math.MaxInt64, math.MaxInt32, false},
	} {
		exp, expired := expiration(tc.deadline, now)
		if exp != tc.exp || expired != tc.expired {
			t.Errorf("%s: expiration = %d, %v; want %d, %v", tc.name, exp, expired, tc.exp, tc.expired)
		}
	}
}
