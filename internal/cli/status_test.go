package cli

import (
	"strings"
	"testing"
)

// Against a server without the admin service (RoadRunner), status says so.
func TestStatus_NoAdminService(t *testing.T) {
	addr := verbTestServer(t)
	code, _, errs := runVerb(t, "status", "--rpc", addr)
	if code != 1 || !strings.Contains(errs, "has no kvnode service") {
		t.Fatalf("exit %d, %q", code, errs)
	}
}
