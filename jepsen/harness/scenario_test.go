package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCluster starts a cluster for a test: docker compose when docker and
// the kvnode image are there, local processes otherwise (or when
// JEPSEN_CLUSTER=local).
func testCluster(t *testing.T, unsafe bool) Cluster {
	t.Helper()
	return startTestCluster(t, unsafe, false)
}

// startTestCluster is testCluster, optionally with failpoints: the image
// is then KVNODE_FP_IMAGE and the local binary KVNODE_FP_BIN (built with
// the tag when unset).
func startTestCluster(t *testing.T, unsafe, failpoints bool) Cluster {
	t.Helper()
	ctx := t.Context()
	image, imageVar, binVar := os.Getenv("KVNODE_IMAGE"), "KVNODE_IMAGE", "KVNODE_BIN"
	if image == "" {
		image = "kvnode:local"
	}
	var overrides []string
	if failpoints {
		image, imageVar, binVar = os.Getenv("KVNODE_FP_IMAGE"), "KVNODE_FP_IMAGE", "KVNODE_FP_BIN"
		fp, err := filepath.Abs("../docker/compose.failpoint.yml")
		if err != nil {
			t.Fatal(err)
		}
		overrides = append(overrides, fp)
	}
	if os.Getenv("JEPSEN_CLUSTER") != "local" && image != "" && DockerAvailable(ctx) && exec.CommandContext(ctx, "docker", "image", "inspect", image).Run() == nil {
		compose, err := filepath.Abs("../../docker-compose.cluster.yml")
		if err != nil {
			t.Fatal(err)
		}
		project := fmt.Sprintf("kvjepsentest%d", time.Now().UnixNano()%1_000_000_000)
		d, err := StartDocker(ctx, DockerOptions{ComposeFile: compose, Project: project, Image: image, UnsafeLocalReads: unsafe,
			Overrides: overrides, Failpoints: failpoints})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close(context.Background()) })
		return d
	}
	t.Logf("local processes (docker or the image %s=%q missing, or JEPSEN_CLUSTER=local)", imageVar, image)
	return startLocalCluster(t, binVar, ProcessesOptions{UnsafeLocalReads: unsafe, Failpoints: failpoints})
}

// startLocalCluster starts three local processes of the binary named by
// binVar (built, with the failpoint tag when opts.Failpoints, when unset),
// with jepsen/docker/kvnode.yaml in a test directory: opts' Binary, Config
// and Dir are filled in.
func startLocalCluster(t *testing.T, binVar string, opts ProcessesOptions) *Processes {
	t.Helper()
	opts.Binary = os.Getenv(binVar)
	if opts.Binary == "" {
		opts.Binary = filepath.Join(t.TempDir(), "kvnode")
		if err := BuildKVNode(t.Context(), "../..", opts.Binary, opts.Failpoints); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := filepath.Abs("../docker/kvnode.yaml")
	if err != nil {
		t.Fatal(err)
	}
	opts.Config = cfg
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	l, err := StartProcesses(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}

// writableCluster is startTestCluster once a linearizable write through
// any node is acknowledged (at most a minute).
func writableCluster(t *testing.T, failpoints bool) Cluster {
	t.Helper()
	c := startTestCluster(t, false, failpoints)
	if err := WaitWritable(t.Context(), c, time.Minute); err != nil {
		t.Fatal(err)
	}
	return c
}

func runStaleRead(t *testing.T, unsafe bool) ([]Op, []Anomaly) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := testCluster(t, unsafe)
	ops, err := StaleReadScenario(t.Context(), c)
	if err != nil {
		t.Fatalf("%s cluster: %v", c.Name(), err)
	}
	anomalies := CheckLinearizable(ops, nil, time.Minute, t.TempDir()).Anomalies
	t.Logf("%s cluster: %d operations", c.Name(), len(ops))
	for _, op := range ops {
		t.Logf("  %s %s %s %s %v %s %s", op.Node, op.Storage, op.F, op.Value, op.Read, op.Status, op.ErrKind)
	}
	return ops, anomalies
}

// TestUnsafeReadsAreCaught is the proof that the checker can fail: with
// cluster.unsafe.local_linearizable_reads the cut-off node serves v1 after
// v2 was acknowledged, and porcupine must call that history illegal on
// both linearizable storages.
func TestUnsafeReadsAreCaught(t *testing.T) {
	_, anomalies := runStaleRead(t, true)
	for _, st := range []string{"memory_lin", "boltdb_lin"} {
		found := false
		for _, a := range anomalies {
			found = found || (a.Check == "linearizability" && strings.HasPrefix(a.Detail, st+"|"))
		}
		if !found {
			t.Errorf("%s: the stale read was not reported; anomalies: %v", st, anomalies)
		}
	}
}

// TestSafeReadsPassTheSameScenario shows the anomaly above comes from the
// switch, not from the checker: with safe reads the cut-off node refuses
// the read and the history is linearizable.
func TestSafeReadsPassTheSameScenario(t *testing.T) {
	ops, anomalies := runStaleRead(t, false)
	if len(anomalies) != 0 {
		t.Fatalf("anomalies with safe reads: %v", anomalies)
	}
	for _, op := range ops {
		if op.F == "get" && op.Status == StatusOK {
			t.Errorf("the cut-off node %s answered a linearizable read: %v", op.Node, op.Read)
		}
	}
}
