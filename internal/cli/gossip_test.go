package cli

import "testing"

func TestDialableRPC(t *testing.T) {
	for _, c := range []struct{ rpc, raft, want string }{
		{"tcp://10.0.0.5:6001", "10.0.0.5:7000", "tcp://10.0.0.5:6001"},
		{"tcp://0.0.0.0:6001", "kv1:7000", "tcp://kv1:6001"},
		{"tcp://:6001", "10.0.0.7:7000", "tcp://10.0.0.7:6001"},
		{"tcp://[::]:6001", "10.0.0.7:7000", "tcp://10.0.0.7:6001"},
		{"tcp://127.0.0.1:0", "10.0.0.7:7000", ""},
		{"unix:///run/kv.sock", "10.0.0.7:7000", "unix:///run/kv.sock"},
	} {
		if got := DialableRPC(c.rpc, c.raft); got != c.want {
			t.Errorf("DialableRPC(%q, %q) = %q, want %q", c.rpc, c.raft, got, c.want)
		}
	}
}
