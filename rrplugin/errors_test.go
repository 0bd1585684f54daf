package rrplugin

import (
	"context"
	"fmt"
	"testing"

	"github.com/kvnode/kvnode/client"
)

// TestDidNothing pins the one rule that keeps failover from writing twice:
// only failures that prove nothing happened may go to another node.
func TestDidNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"dial refused", fmt.Errorf("%w tcp://127.0.0.1:1: connection refused", client.ErrDial), true},
		{"no leader", &client.ServerError{Method: client.MethodSet, Text: "rpc_set: no leader: write not applied, retry (no leader known for 1s)"}, true},
		{"read unconfirmed", &client.ServerError{Method: client.MethodMGet, Text: "rpc_mget: no leader: linearizable read could not be confirmed, retry (context deadline exceeded)"}, true},
		{"connection lost", fmt.Errorf("kv.Set: %w: EOF", client.ErrUnknownOutcome), false},
		{"timeout after sending", fmt.Errorf("kv.Set: %w: %w", client.ErrUnknownOutcome, context.DeadlineExceeded), false},
		{"node's unknown outcome", &client.ServerError{Method: client.MethodSet, Text: "rpc_set: outcome unknown: leadership lost or timed out during commit, the write may or may not be applied"}, false},
		{"refusal", &client.ServerError{Method: client.MethodSet, Text: "rpc_set: no such storage: x"}, false},
		{"closed", client.ErrClosed, false},
	} {
		if got := didNothing(&nodeError{addr: "tcp://n", err: tc.err}); got != tc.want {
			t.Errorf("%s: didNothing = %v, want %v", tc.name, got, tc.want)
		}
	}
}
