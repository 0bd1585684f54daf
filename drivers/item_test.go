package drivers

import (
	"testing"
)

func TestParseTimeout_Range(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{
		{"", 0},
		{"1970-01-01T00:00:00Z", 1},
		{"1969-12-31T23:59:59Z", 1},
		{"0001-01-01T00:00:00Z", 1}, // UnixNano would wrap it into the future
		{"2030-01-01T00:00:00Z", 1893456000 * 1e9},
		{"2262-04-11T23:47:16.854775807Z", MaxDeadline},
		{"2262-04-11T23:47:16.854775808Z", MaxDeadline},
		{"9999-12-31T00:00:00Z", MaxDeadline}, // UnixNano would wrap it into the past
		{"9999-12-31T23:59:59+14:00", MaxDeadline},
	} {
		got, err := ParseTimeout(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseTimeout(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	if Expired(MaxDeadline, 1893456000*1e9) {
		t.Error("the clamped deadline counts as expired")
	}
}
