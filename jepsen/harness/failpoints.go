package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Failpoint names, as kvnode's internal/failpoint defines them.
const (
	FailpointClock    = "clock"
	FailpointFSM      = "fsm-apply"
	FailpointRaftLogs = "raft-store-logs"
)

// setFailpoint sets a failpoint through a node's endpoint at addr (a
// failpoint build's KVNODE_FAILPOINT_ADDR), or clears it when term is "".
func setFailpoint(ctx context.Context, addr, name, term string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	method := http.MethodPut
	if term == "" {
		method = http.MethodDelete
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+"/"+name, strings.NewReader(term))
	if err != nil {
		return fmt.Errorf("failpoint %s: %w", name, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("failpoint %s at %s: %w", name, addr, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("failpoint %s at %s: %s: %s", name, addr, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// probeFailpoints waits until every endpoint answers, at most d: a kvnode
// built without the failpoint tag never does.
func probeFailpoints(ctx context.Context, addrs map[string]string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for node, addr := range addrs {
		var err error
		for i := 0; i < 100 && time.Now().Before(deadline); i++ {
			if err = setFailpoint(ctx, addr, FailpointFSM, ""); err == nil {
				break
			}
			if !sleepCtx(ctx, 200*time.Millisecond) {
				return ctx.Err()
			}
		}
		if err != nil {
			return fmt.Errorf("%w: %s has no failpoint endpoint (is kvnode built with -tags failpoint? make image-failpoint): %w", ErrNotReady, node, err)
		}
	}
	return nil
}
