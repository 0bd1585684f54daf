package drivers_test

import (
	"errors"
	"testing"

	"github.com/kvnode/kvnode/drivers"
)

func TestParseMemorySize(t *testing.T) {
	good := map[string]drivers.MemorySize{
		"536870912": {Bytes: 512 << 20},
		"512MiB":    {Bytes: 512 << 20},
		"512 mib":   {Bytes: 512 << 20},
		"512Mi":     {Bytes: 512 << 20},
		"512m":      {Bytes: 512 << 20},
		"1.5GB":     {Bytes: 1_500_000_000},
		"2g":        {Bytes: 2 << 30},
		"100b":      {Bytes: 100},
		"25%":       {Percent: 25},
		" 12.5 % ":  {Percent: 12.5},
	}
	for in, want := range good {
		got, err := drivers.ParseMemorySize(in)
		if err != nil || got != want {
			t.Errorf("ParseMemorySize(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1MiB", "12 parsecs", "0%", "101%", "MiB", "1e3", "99999999999TiB", "1..5GB"} {
		if got, err := drivers.ParseMemorySize(in); !errors.Is(err, drivers.ErrBadLimit) {
			t.Errorf("ParseMemorySize(%q) = %+v, %v; want ErrBadLimit", in, got, err)
		}
	}
	if got := (drivers.MemorySize{Percent: 25}).Resolve(8 << 30); got != 2<<30 {
		t.Errorf("25%% of 8GiB = %d", got)
	}
	if s := (drivers.MemorySize{Bytes: 512 << 20}).String(); s != "512MiB" {
		t.Errorf("String = %q", s)
	}
}

func TestParsePolicy(t *testing.T) {
	for _, p := range []drivers.Policy{drivers.PolicyReject, drivers.PolicyLRU, drivers.PolicyTTL, drivers.PolicyRandom} {
		got, err := drivers.ParsePolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %v, %v", p, got, err)
		}
	}
	if _, err := drivers.ParsePolicy("allkeys-lru"); !errors.Is(err, drivers.ErrBadLimit) {
		t.Errorf("ParsePolicy(allkeys-lru): %v", err)
	}
}
