package failpoint

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// onlyInFailpointBuilds are symbols of on.go (the endpoint, the registry,
// the hooks' bodies) and of the slow raft log wrapper. A release binary
// must hold none of them: the hooks are inlined away.
var onlyInFailpointBuilds = []string{
	"internal/failpoint.Serve.handler",
	"internal/failpoint.parseTerm",
	"internal/failpoint.(*registry)",
	"internal/failpoint.Sleep",
	"kvnode/log.slowLog",
}

// build compiles kvnode with the given extra flags and returns the
// symbol table and the binary.
func build(t *testing.T, flags ...string) (string, []byte) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kvnode")
	args := append([]string{"build", "-o", bin}, flags...)
	cmd := exec.CommandContext(t.Context(), "go", append(args, "./cmd/kvnode")...)
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, out)
	}
	nm, err := exec.CommandContext(t.Context(), "go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return string(nm), b
}

// TestNormalBuildHasNoFailpoints builds kvnode as releases are built and
// checks that the fault-injection endpoint is not in it, and, so that the
// test can fail, that a failpoint build has it.
func TestNormalBuildHasNoFailpoints(t *testing.T) {
	nm, bin := build(t)
	for _, sym := range onlyInFailpointBuilds {
		if strings.Contains(nm, sym) {
			t.Errorf("the normal build contains %s", sym)
		}
	}
	if bytes.Contains(bin, []byte("KVNODE_FAILPOINT_ADDR")) {
		t.Error("the normal build contains the failpoint endpoint's variable name")
	}

	nm, bin = build(t, "-tags", "failpoint")
	for _, sym := range onlyInFailpointBuilds {
		if !strings.Contains(nm, sym) {
			t.Errorf("the failpoint build lacks %s: the check above proves nothing", sym)
		}
	}
	if !bytes.Contains(bin, []byte("KVNODE_FAILPOINT_ADDR")) {
		t.Error("the failpoint build lacks the endpoint's variable name")
	}
}
